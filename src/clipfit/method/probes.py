"""Linear probes: classes learned as weights on image features; the text encoder is not used (class-specific).

- `linear_probe` (LayerNorm tuning paper, Sec. 3.2): a Linear layer on the image encoder's pooled output *before* the projection
  (768 + 1 = 769 parameters per class on ViT-B/16), trained like the paper's other methods (AdamW 5e-4, weight
  decay 0.02, cosine, best epoch on validation, random crops). With the backbone frozen it trains on features the
  frozen image encoder computed once (no back-propagation through CLIP): a pool of `views` augmented views per image
  (the recipe's 10), epoch e training on view e mod `views` of every image; `views=0` is one un-augmented view. `linear_probe+ln`
  / `layernorm=true` tunes the image encoder's LayerNorms with it (39,936 on ViT-B/16: the text encoder's do not
  reach the logits), then it trains through CLIP on augmented images each epoch.
  `init_from=RUN` starts from a LayerNorm-tuned run (that paper's best combination, Table 1).
- `logreg_probe` (CoOp's linear-probe baseline): scikit-learn's L2 logistic regression (lbfgs) on the normalised
  projected image features, no SGD. The inverse regularisation strength C is chosen on the validation split: the
  grid 1e-6, 1e-4, ..., 1e6 (as CoOp's initial search), then `search_steps` refinements that try the best C times
  10^(+-step) with step halving from 1 (in log10) each time, keeping a candidate only when it is strictly better
  (ties keep the stronger regularisation). Without a validation split C = 1.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from .. import recipes
from ..config import opt
from ..errors import ClipfitError, require
from .base import Method, MethodConfig, register_method, register_preset

HC = TypeVar("HC", bound=MethodConfig)


class ClassSpecificHead(Method[HC]):
    """Shared by the probes: a Linear head over the classes, created when the classes are first set."""

    class_agnostic = False
    mergeable = False
    feature_logits = False  # a linear head, no text features
    head: Any  # an nn.Linear once the classes are set (None before)

    def _feature_dim(self) -> int:
        raise NotImplementedError

    def build(self) -> None:
        self.head = None

    def set_classes(self, classnames: Sequence[str]) -> None:
        classnames = list(classnames)
        if getattr(self, "head", None) is not None:
            if classnames != self.classnames:
                raise ClipfitError(f"method {self.name!r} learned one weight vector per training class; it cannot "
                                   "classify other classes")
            return
        self.classnames = classnames
        self.head = nn.Linear(self._feature_dim(), len(classnames))
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()

    def text_features(self) -> torch.Tensor:
        return torch.zeros(0)  # the text encoder is not used

    @property
    def text_is_static(self) -> bool:
        return True

    def logits(self, image_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        return self.head(image_feats.to(self.head.weight.dtype))


@dataclass
class LinearProbeConfig(MethodConfig):
    views: int = opt(0, "training views per image cached when the backbone is frozen: 0 = one un-augmented view; "
                        "N = a pool of N augmented views, epoch e on view e mod N (the recipe's: "
                        f"{recipes.LINEAR_PROBE_VIEWS})", range="[0, inf)")
    layernorm_tower: str = opt("vision", "LayerNorms tuned when layernorm=true (the text encoder does not reach "
                                         "a linear probe's logits)", ("vision", "both", "text"))


@register_method("linear_probe")
class LinearProbe(ClassSpecificHead[LinearProbeConfig]):
    """Linear probe on the image encoder's pooled output before projection (LayerNorm tuning paper; 769 per class on ViT-B/16)."""

    Config = LinearProbeConfig
    recipe = recipes.LINEAR_PROBE

    def _feature_dim(self) -> int:
        return self.backbone.model.vision_model.config.hidden_size

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()

    @property
    def trains_on_features(self) -> bool:
        return not self.backbone_trains

    @property
    def view_per_epoch(self) -> bool:
        return True  # as the paper's other methods: one augmented view of each image per epoch

    def frozen_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.backbone.image_pooled(pixel_values)


register_preset("linear_probe+ln", "linear_probe", "linear probe with the image encoder's LayerNorms tuned together "
                "(LayerNorm tuning paper, Table 1 'Normal'; 39,936 + 769 per class on ViT-B/16)", layernorm=True)


@dataclass
class LogRegConfig(MethodConfig):
    C: float = opt(0.0, "inverse L2 regularisation strength; 0 = search on the validation split (see `logreg_probe`)",
                    range="[0, inf)")
    search_steps: int = opt(4, "refinement steps of the C search after the grid 1e-6..1e6", range="[0, inf)")
    max_iter: int = opt(1000, "lbfgs iterations", range="[1, inf)")


@register_method("logreg_probe")
class LogRegProbe(ClassSpecificHead[LogRegConfig]):
    """CoOp-style linear probe: scikit-learn logistic regression on normalised image features, C chosen on validation."""

    Config = LogRegConfig
    closed_form = True
    recipe = recipes.NO_TRAINING  # no epochs: one solver fit per candidate C

    def _feature_dim(self) -> int:
        return self.backbone.embed_dim

    def on_train_start(self) -> None:
        super().on_train_start()
        require("sklearn", "method logreg_probe", "scikit-learn")  # before the features are computed, not after

    def _fit(self, x: np.ndarray, y: np.ndarray, c: float) -> Any:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=c, max_iter=self.cfg.max_iter)
        clf.fit(x, y)
        return clf

    def _set_head(self, clf: Any) -> None:
        n_cls, dim = len(self.classnames), self._feature_dim()
        w = np.zeros((n_cls, dim), np.float64)
        b = np.full(n_cls, -1e4, np.float64)  # a class with no training image is never predicted
        coef, icpt = clf.coef_, clf.intercept_
        if len(clf.classes_) == 2 and coef.shape[0] == 1:  # binary: one decision function d; logits (-d/2, d/2)
            coef = np.concatenate([-coef / 2, coef / 2])
            icpt = np.concatenate([-icpt / 2, icpt / 2])
        for row, k in enumerate(clf.classes_):
            w[int(k)], b[int(k)] = coef[row], icpt[row]
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(w))
            self.head.bias.copy_(torch.from_numpy(b))

    def fit_features(self, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor | None,
                     val_y: torch.Tensor | None) -> dict[str, Any]:
        x, y = train_x.double().numpy(), train_y.numpy()
        if len(np.unique(y)) < 2:
            raise ClipfitError("logreg_probe needs training images of at least two classes")
        history: list[dict[str, Any]] = []
        tried: dict[float, tuple[float, Any]] = {}

        if self.cfg.C > 0 or val_x is None or val_y is None or len(val_y) == 0:
            c = self.cfg.C if self.cfg.C > 0 else 1.0
            clf = self._fit(x, y, c)
            self._set_head(clf)
            val_acc = None
            if val_x is not None and val_y is not None and len(val_y):
                val_acc = float((clf.predict(val_x.double().numpy()) == val_y.numpy()).mean() * 100.0)
            return {"C": c, "val_accuracy": val_acc, "history": [{"C": c}]}
        vx, vy = val_x.double().numpy(), val_y.numpy()

        def score(c: float) -> float:
            if c not in tried:
                clf = self._fit(x, y, c)
                acc = float((clf.predict(vx) == vy).mean() * 100.0)
                tried[c] = (acc, clf)
                history.append({"C": c, "val_accuracy": acc})
            return tried[c][0]

        grid = [10.0 ** e for e in range(-6, 7, 2)]
        best = grid[0]
        for c in grid[1:]:
            if score(c) > score(best):
                best = c
        step = 1.0
        for _ in range(self.cfg.search_steps):
            for c in (best * 10 ** -step, best * 10 ** step):
                if score(c) > score(best):
                    best = c
            step /= 2
        self._set_head(tried[best][1])
        return {"C": best, "val_accuracy": tried[best][0], "history": history}

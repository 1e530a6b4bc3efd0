"""Tip-Adapter and Tip-Adapter-F (Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP for Few-shot
Classification", ECCV 2022): a key-value cache of the few-shot training set next to zero-shot CLIP.

With f the normalised image feature, W the normalised class text features, K the cache keys (one per training
image) and L their one-hot labels:

    logits = s f W^T + alpha * exp(-beta (1 - f K^T)) L

s is the model's own logit scale (100 for OpenAI's CLIP, which the reference writes as a literal 100).
Keys: the frozen encoder's raw (unnormalised) features of `views` randomly augmented passes over the training images
(random resized crop of 0.5-1 of the area, flip), averaged per image and then normalised, as the reference orders it.

- `tip_adapter`: training-free; alpha and beta are searched on the validation split over the reference's grid
  beta_i = 0.1 + i (beta_max - 0.1) / 200 (i = 0..199), alpha_j = 0.1 + j (alpha_max - 0.1) / 20 (j = 0..19), beta
  outer, alpha inner, the first strict maximum kept. Without a validation split the initial alpha, beta stay.
- `tip_adapter_f`: the keys are trainable (initialised from the cache, not re-normalised while training; N x K x D
  parameters), trained with cross-entropy at the initial alpha, beta on the cached augmented views (epoch e on view
  e mod views); the epoch is kept on validation, then alpha and beta are searched as above with the trained keys.

Where we differ from the reference, on purpose: the reference keeps Tip-Adapter-F's best epoch on the TEST set and
reports the better of that and the post-search test accuracy, and searches ImageNet's alpha and beta on the test
features; here every choice is made on the validation split and the test split is read once, at the end (without a
validation split nothing is searched: the initial alpha, beta and the last epoch are kept). Tip-Adapter-F trains on
the cached augmented views rather than on fresh augmentations each epoch. The cache term is computed in fp32 (the
reference runs it in fp16).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import recipes
from ..config import opt
from ..errors import ClipfitError
from .base import Method, MethodConfig, register_method

_BETA_MAX, _ALPHA_MAX, _BETA, _ALPHA = (float(v) for v in recipes.TIP_ADAPTER_DEFAULT)


def cache_logits(f: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """alpha * exp(-beta (1 - f K^T)) L for normalised features f [B, D], keys K [M, D] and values L [M, C]."""
    return alpha * torch.exp(-beta * (1.0 - f @ keys.t())) @ values


def cache_keys(raw: torch.Tensor, views: int) -> torch.Tensor:
    """Keys from view-major raw features [views * n, D]: the mean over the views of each image, then normalised."""
    return F.normalize(raw.float().reshape(views, -1, raw.shape[-1]).mean(0), dim=-1)


def search_grid(top: float, steps: int) -> list[float]:
    """The reference's search values: 0.1 + i (top - 0.1) / steps for i = 0 .. steps - 1 (`top` is not reached)."""
    return [0.1 + i * (top - 0.1) / steps for i in range(steps)]


@dataclass
class TipAdapterConfig(MethodConfig):
    alpha: float = opt(_ALPHA, "residual ratio of the cache term: its initial value (Tip-Adapter-F trains with it) and "
                               "the value used without a validation split (the recipe sets the reference's per dataset)")
    beta: float = opt(_BETA, "sharpness of the affinity exp(-beta (1 - f K^T)): initial value, as alpha")
    search: bool = opt(True, "search alpha and beta on the validation split (false: keep the initial values)")
    alpha_max: float = opt(_ALPHA_MAX, "alpha searched over 0.1 + j (alpha_max - 0.1) / alpha_steps, j < alpha_steps")
    beta_max: float = opt(_BETA_MAX, "beta searched over 0.1 + i (beta_max - 0.1) / beta_steps, i < beta_steps")
    alpha_steps: int = opt(20, "number of alpha values searched (the reference's 20)")
    beta_steps: int = opt(200, "number of beta values searched (the reference's 200)")
    views: int = opt(10, "augmented passes over the training images whose raw features are averaged into the keys "
                         "(the reference's augment_epoch 10; 0: one un-augmented view); Tip-Adapter-F trains on "
                         "them, epoch e on view e mod views")


@register_method("tip_adapter")
class TipAdapter(Method[TipAdapterConfig]):
    """Tip-Adapter: training-free cache of the few-shot features next to zero-shot CLIP; alpha, beta chosen on validation."""

    Config = TipAdapterConfig
    recipe = recipes.TIP_ADAPTER
    closed_form = True
    mergeable = False
    feature_logits = False  # zero-shot logits plus the cache's
    class_agnostic = False  # the cache's values are one-hot over the training classes
    dim: int
    keys: torch.Tensor  # buffers (or, Tip-Adapter-F, a parameter) saved with the run
    values: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor

    def build(self) -> None:
        self.dim = self.backbone.embed_dim
        self._make_keys(0)
        self.register_buffer("values", torch.zeros(0, 0))
        self.register_buffer("alpha", torch.tensor(float(self.cfg.alpha), dtype=torch.float64))  # the chosen values,
        self.register_buffer("beta", torch.tensor(float(self.cfg.beta), dtype=torch.float64))  # saved with the cache

    def _make_keys(self, n: int) -> None:
        self.register_buffer("keys", torch.zeros(n, self.dim, device=self.backbone.device))

    # -- the cache -----------------------------------------------------------------------------------------------
    def size_for(self, n_train: int) -> None:
        if self.keys.shape[0] != n_train:
            self._make_keys(n_train)
        if self.values.shape != (n_train, len(self.classnames)):
            self.values = torch.zeros(n_train, len(self.classnames), device=self.keys.device)

    def set_classes(self, classnames: Sequence[str]) -> None:
        if getattr(self, "values", None) is not None and self.values.numel() and list(classnames) != self.classnames:
            raise ClipfitError(f"method {self.name!r} caches one-hot labels of its training classes; it cannot classify "
                               "other classes")
        super().set_classes(classnames)

    @torch.no_grad()
    def on_features(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        views = max(1, self.feature_views or 0)
        y = labels.reshape(views, -1)
        if not bool((y == y[0]).all()):
            raise RuntimeError("cached views are not in the same image order")
        self.size_for(y.shape[1])
        self.keys.copy_(cache_keys(feats, views))
        self.values.copy_(F.one_hot(y[0].long(), len(self.classnames)).float())

    # -- features and logits -------------------------------------------------------------------------------------
    @property
    def text_is_static(self) -> bool:
        return not self.text_tower_trains

    def frozen_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_image(pixel_values, normalize=False)  # raw: the keys average raw features

    def adapt_image_features(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(feats.float(), dim=-1)

    def logits(self, image_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        zs = super().logits(image_feats, text_feats).float()
        if not self.values.numel():
            return zs  # no cache yet: zero-shot CLIP
        with torch.autocast(image_feats.device.type, enabled=False):  # exp(-beta (1 - a)) amplifies bf16 errors
            return zs + cache_logits(image_feats.float(), self.keys.float(), self.values, float(self.alpha),
                                     float(self.beta))

    # -- choosing alpha and beta on validation ---------------------------------------------------------------
    @torch.no_grad()
    def search_alpha_beta(self, val_x: torch.Tensor | None, val_y: torch.Tensor | None) -> dict[str, Any]:
        """Set alpha, beta to the best on the validation features (raw [M, D]) over the grid; returns the choice,
        its validation accuracy and a history of the improvements."""
        alpha, beta = float(self.alpha), float(self.beta)
        if not self.cfg.search or val_x is None or val_y is None or not len(val_y):
            return {"alpha": alpha, "beta": beta, "val_accuracy": None}
        dev = self.keys.device
        f, y = self.adapt_image_features(val_x.to(dev)), val_y.to(dev)
        zs = super().logits(f, self.text_features().float()).float()
        affinity = f @ self.keys.float().t()

        def acc(z: torch.Tensor) -> float:
            return float((z.argmax(-1) == y).float().mean()) * 100.0

        history = [{"zero_shot_val_accuracy": acc(zs),
                    "initial_val_accuracy": acc(zs + cache_logits(f, self.keys.float(), self.values, alpha, beta))}]
        best = -1.0
        for b in search_grid(self.cfg.beta_max, self.cfg.beta_steps):
            cache = torch.exp(-b * (1.0 - affinity)) @ self.values
            for a in search_grid(self.cfg.alpha_max, self.cfg.alpha_steps):
                score = acc(zs + a * cache)
                if score > best:  # the first strict maximum, beta outer, alpha inner (the reference's order)
                    best, alpha, beta = score, a, b
                    history.append({"beta": b, "alpha": a, "val_accuracy": score})
        self.alpha.fill_(alpha)
        self.beta.fill_(beta)
        return {"alpha": alpha, "beta": beta, "val_accuracy": best, "history": history}

    def fit_features(self, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor | None,
                     val_y: torch.Tensor | None) -> dict[str, Any]:
        return self.search_alpha_beta(val_x, val_y)  # the cache was built by `on_features`

    # -- stored state ------------------------------------------------------------------------------------------
    def stored_state(self) -> dict[str, torch.Tensor]:
        out = super().stored_state()
        out.update({"values": self.values, "alpha": self.alpha, "beta": self.beta})
        if not self.keys.requires_grad:
            out["keys"] = self.keys
        return {k: v.detach() for k, v in out.items()}

    def load_stored_state(self, state: dict[str, torch.Tensor]) -> set[str]:
        used = super().load_stored_state(state)
        own = {"values", "alpha", "beta"} | ({"keys"} if not self.keys.requires_grad else set())
        missing = own - set(state)
        if missing:
            raise ClipfitError(f"tuned weights of {self.name!r} lack the cache's {sorted(missing)}")
        with torch.no_grad():
            for k in sorted(own):
                getattr(self, k).copy_(state[k])
        return used | own

    def load_tuned(self, state: dict[str, torch.Tensor]) -> None:
        values = state.get("values")
        if values is not None and values.ndim == 2:
            if values.shape[1] != len(self.classnames):
                raise ClipfitError(f"the stored cache has {values.shape[1]} classes, this run has {len(self.classnames)}")
            self.size_for(values.shape[0])
        super().load_tuned(state)


@register_method("tip_adapter_f")
class TipAdapterF(TipAdapter):
    """Tip-Adapter-F: the cache keys fine-tuned (N x K x D parameters), epoch, alpha and beta chosen on validation."""

    recipe = recipes.TIP_ADAPTER_F
    closed_form = False

    def build(self) -> None:
        if self.cfg.layernorm:
            raise ClipfitError("tip_adapter_f trains its keys on features of the frozen image encoder; layernorm=true "
                               "cannot tune LayerNorms with it (use clip_adapter+ln)")
        super().build()

    def _make_keys(self, n: int) -> None:
        self.keys = nn.Parameter(torch.zeros(n, self.dim, device=self.backbone.device))

    @property
    def trains_on_features(self) -> bool:
        return True

    @property
    def view_per_epoch(self) -> bool:
        return True

    def select_on_validation(self, val_x: torch.Tensor | None, val_y: torch.Tensor | None) -> dict[str, Any]:
        return self.search_alpha_beta(val_x, val_y)

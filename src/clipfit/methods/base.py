"""The Method interface: which parameters train, what modules are added, the loss, and default settings."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..backbone import Backbone, parameter_group
from ..errors import ClipfitError
from ..registry import Registry

METHODS: Registry[type["Method"]] = Registry("method")


def register_method(name: str):
    def deco(cls: type["Method"]) -> type["Method"]:
        cls.name = name
        return METHODS.register(name)(cls)

    return deco


def _model_key(model: str | None) -> str:
    """A comparable name for a model reference (run configs store local directories as absolute paths)."""
    from ..backbone import EMBEDDED_MODEL

    if model in (None, "", EMBEDDED_MODEL, "mini"):
        return EMBEDDED_MODEL
    return str(Path(model).resolve()) if os.path.isdir(model) else str(model)


@dataclass
class NoConfig:
    """This method has no settings of its own."""


class Method(nn.Module):
    """A way of adapting a CLIP backbone. Subclasses override `build` (choose/add trainable parameters) and, when
    needed, `text_features`, `image_features`, `loss`, `on_train_start`."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    train_defaults: ClassVar[dict[str, Any]] = {}  # TrainConfig fields this method sets differently
    mergeable: ClassVar[bool] = True  # tuned weights are the backbone's own parameters: `export --merged` works
    class_agnostic: ClassVar[bool] = True  # can classify classes never trained on (base-to-new "new")
    closed_form: ClassVar[bool] = False  # fitted by `fit_features` on cached frozen features (no SGD, no epochs)

    def __init__(self, backbone: Backbone, classnames: Sequence[str], template: str | Sequence[str], cfg: Any = None):
        super().__init__()
        self.backbone = backbone
        self.cfg = cfg if cfg is not None else self.Config()
        self.templates = [template] if isinstance(template, str) else list(template)
        backbone.requires_grad_(False)
        self._init_names: list[str] = []  # backbone parameters taken from an earlier run (config `init_from`)
        self._init_pending = False
        if getattr(self.cfg, "init_from", ""):
            self._init_from_run(self.cfg.init_from)
        self.build()
        self.set_classes(classnames)

    @classmethod
    def protocol_defaults(cls, protocol: str, dataset: str) -> dict[str, Any]:
        """Settings (method or training fields) the papers use for this protocol and dataset; user --set wins."""
        return {}

    # -- what trains -------------------------------------------------------------------------------------------
    def build(self) -> None:
        """Unfreeze backbone parameters and/or add modules. Default: nothing trains (zero-shot)."""

    def reset_parameters(self) -> None:
        """(Re-)initialise the method's own new modules from the global RNG. The engine calls it right after
        seeding, so the initialisation is a function of the run's seed. Default: nothing to initialise."""

    def unfreeze(self, *groups: str) -> None:
        params = dict(self.backbone.model.named_parameters())
        for g in groups:
            for n in parameter_group(self.backbone.model, g):
                params[n].requires_grad_(True)

    def trainable(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable().values())

    @property
    def text_is_static(self) -> bool:
        """True when nothing that trains affects the class text features (the engine then caches them).

        Default: no trainable parameter of the text tower and no trainable parameter outside the backbone (a
        method whose own modules do not touch the text features says so by overriding this)."""
        tower = self.backbone.model.text_model
        proj = self.backbone.model.text_projection
        if any(p.requires_grad for p in list(tower.parameters()) + list(proj.parameters())):
            return False
        return not any(p.requires_grad for n, p in self.named_parameters() if not n.startswith("backbone."))

    @property
    def backbone_trains(self) -> bool:
        """True when some backbone parameter is trainable (gradients must flow through CLIP)."""
        return any(p.requires_grad for p in self.backbone.model.parameters())

    # -- training on cached features (no back-propagation through CLIP) ---------------------------------------
    @property
    def trains_on_features(self) -> bool:
        """True when the engine should encode the training images once with the frozen backbone
        (`frozen_image_features`) and train only `adapt_image_features` / the text side on those features."""
        return False

    @property
    def feature_views(self) -> int:
        """Views per training image in the feature cache: 0 = one un-augmented view (eval transform), N > 0 =
        N randomly augmented views (train transform). Read from the method config's `views` when it has one."""
        return int(getattr(self.cfg, "views", 0) or 0)

    def on_features(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Called with the cached training features [N, D] and labels [N] before training on features."""

    def fit_features(self, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor | None,
                     val_y: torch.Tensor | None) -> dict[str, Any]:
        """Closed-form / solver fit on cached features (closed_form methods). Returns at least
        {'val_accuracy': float | None} and may add 'history' (one record per candidate) and other fields."""
        raise NotImplementedError(f"method {self.name!r} is not fitted in closed form")

    # -- classes and features ----------------------------------------------------------------------------------
    def set_classes(self, classnames: Sequence[str]) -> None:
        """Set the classes to classify (their prompts are built from the templates)."""
        self.classnames = list(classnames)
        self._tokens = [self.backbone.tokenize([t.format(c) for c in self.classnames]) for t in self.templates]

    def text_features(self) -> torch.Tensor:
        """Normalised class features [C, D] (mean over templates when there are several)."""
        feats = [self.backbone.encode_text(tok) for tok in self._tokens]
        return feats[0] if len(feats) == 1 else F.normalize(torch.stack(feats).mean(0), dim=-1)

    def frozen_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """What the frozen backbone gives for an image (what a feature cache holds): normalised projected features."""
        return self.backbone.encode_image(pixel_values)

    def adapt_image_features(self, feats: torch.Tensor) -> torch.Tensor:
        """The method's own transformation of `frozen_image_features` (default: none)."""
        return feats

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.adapt_image_features(self.frozen_image_features(pixel_values))

    @property
    def uses_dataset_template(self) -> bool:
        """True when the class prompts come from the dataset's template (so another dataset's template may replace
        it); False when the method fixes its own prompts (a template ensemble, learned context)."""
        return True

    def logits(self, image_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        return self.backbone.logit_scale * image_feats @ text_feats.t()

    # -- training ----------------------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        """Called once before the first step (e.g. to store frozen zero-shot features). Subclasses call super()."""
        if self._init_pending:
            raise ClipfitError(f"init_from={self.cfg.init_from}: no tuned.safetensors there; train the first stage "
                               "(e.g. `clipfit train --method layernorm --out DIR`) and pass its run directory")

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, text_feats: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(logits, labels)
        return ce, {"ce": float(ce.detach())}

    # -- tuned weights -----------------------------------------------------------------------------------------
    def _init_from_run(self, run_dir: str) -> None:
        """Two-stage training: copy the tuned backbone weights of an earlier run (e.g. a `layernorm` run) into the
        backbone before this method is built. They are saved with this run's weights (see `stored_state`), so the
        run reloads even when the first run's directory is gone."""
        from ..io import load_tensors

        path = Path(run_dir)
        if not (path / "tuned.safetensors").exists():
            # a reloaded run brings these weights in its own tuned.safetensors; training must not start without them
            self._init_pending = True
            return
        cfg_path = path / "config.json"
        if cfg_path.exists():
            rec = json.loads(cfg_path.read_text(encoding="utf-8"))
            if _model_key(rec.get("model")) != _model_key(self.backbone.source):
                raise ClipfitError(f"init_from={run_dir}: that run adapted model {rec.get('model')!r}, this one is "
                                   f"{self.backbone.source!r}; a first stage must use the same model")
        params = dict(self.backbone.model.named_parameters())
        prefix = "backbone.model."
        names = []
        with torch.no_grad():
            for k, t in load_tensors(path / "tuned.safetensors").items():
                n = k[len(prefix):] if k.startswith(prefix) else None
                if n is None or n not in params:
                    continue  # the first stage's own modules (adapters, heads) are not carried over
                if params[n].shape != t.shape:
                    raise ClipfitError(f"init_from={run_dir}: weight {n} has shape {tuple(t.shape)}, this model needs "
                                       f"{tuple(params[n].shape)}")
                params[n].copy_(t.to(params[n].dtype))
                names.append(n)
        if not names:
            raise ClipfitError(f"init_from={run_dir}: that run tuned no weights of the backbone (use a run of a method "
                               "such as layernorm, bitfit or clipfit)")
        self._init_names = names

    def stored_state(self) -> dict[str, torch.Tensor]:
        """Tensors that belong to a trained method but are not trained by gradient (e.g. stored training features,
        weights taken from an earlier run); saved with the trainable ones. Subclasses extend the dict of `super()`."""
        params = dict(self.backbone.model.named_parameters())
        return {f"backbone.model.{n}": params[n].detach() for n in self._init_names if not params[n].requires_grad}

    def load_stored_state(self, state: dict[str, torch.Tensor]) -> set[str]:
        """Take what `stored_state` saved from `state`; returns the keys used (the others are 'unexpected').
        Subclasses add the keys they use to those of `super()`."""
        if not getattr(self.cfg, "init_from", ""):
            return set()
        params = dict(self.backbone.model.named_parameters())
        used, names = set(), []
        with torch.no_grad():
            for k, t in state.items():
                n = k.removeprefix("backbone.model.")
                if k.startswith("backbone.model.") and n in params and not params[n].requires_grad:
                    if params[n].shape != t.shape:
                        raise ClipfitError(f"tuned weight {n} has shape {tuple(t.shape)}, model needs {tuple(params[n].shape)}")
                    params[n].copy_(t.to(params[n].dtype))
                    used.add(k)
                    names.append(n)
        self._init_names = sorted(set(self._init_names) | set(names))
        self._init_pending = False
        return used

    def tuned_state(self) -> dict[str, torch.Tensor]:
        out = {n: p.detach().clone() for n, p in self.trainable().items()}
        for n, t in self.stored_state().items():
            out.setdefault(n, t.detach().clone())
        return out

    def load_tuned(self, state: dict[str, torch.Tensor]) -> None:
        own = self.trainable()
        missing = set(own) - set(state)
        rest = {k: v for k, v in state.items() if k not in own}
        used = self.load_stored_state(rest) if rest else set()
        unexpected = set(rest) - set(used)
        if missing or unexpected:
            raise ClipfitError(
                f"tuned weights do not fit method {self.name!r}: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
            )
        with torch.no_grad():
            for n, p in own.items():
                if p.shape != state[n].shape:
                    raise ClipfitError(f"tuned weight {n} has shape {tuple(state[n].shape)}, model needs {tuple(p.shape)}")
                p.copy_(state[n].to(p.dtype))


def build_method(name: str, backbone: Backbone, classnames: Sequence[str], template: str | Sequence[str],
                 cfg: Any = None) -> Method:
    return METHODS.get(name)(backbone, classnames, template, cfg)

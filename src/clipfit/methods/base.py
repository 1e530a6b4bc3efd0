"""The Method interface: which parameters train, what modules are added, the loss, and default settings."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

    def __init__(self, backbone: Backbone, classnames: Sequence[str], template: str | Sequence[str], cfg: Any = None):
        super().__init__()
        self.backbone = backbone
        self.cfg = cfg if cfg is not None else self.Config()
        self.templates = [template] if isinstance(template, str) else list(template)
        backbone.requires_grad_(False)
        self.build()
        self.set_classes(classnames)

    @classmethod
    def protocol_defaults(cls, protocol: str, dataset: str) -> dict[str, Any]:
        """Settings (method or training fields) the papers use for this protocol and dataset; user --set wins."""
        return {}

    # -- what trains -------------------------------------------------------------------------------------------
    def build(self) -> None:
        """Unfreeze backbone parameters and/or add modules. Default: nothing trains (zero-shot)."""

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
        """True when nothing that trains affects the class text features (the engine then caches them)."""
        tower = self.backbone.model.text_model
        proj = self.backbone.model.text_projection
        return not any(p.requires_grad for p in list(tower.parameters()) + list(proj.parameters()))

    # -- classes and features ----------------------------------------------------------------------------------
    def set_classes(self, classnames: Sequence[str]) -> None:
        """Set the classes to classify (their prompts are built from the templates)."""
        self.classnames = list(classnames)
        self._tokens = [self.backbone.tokenize([t.format(c) for c in self.classnames]) for t in self.templates]

    def text_features(self) -> torch.Tensor:
        """Normalised class features [C, D] (mean over templates when there are several)."""
        feats = [self.backbone.encode_text(tok) for tok in self._tokens]
        return feats[0] if len(feats) == 1 else F.normalize(torch.stack(feats).mean(0), dim=-1)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_image(pixel_values)

    def logits(self, image_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        return self.backbone.logit_scale * image_feats @ text_feats.t()

    # -- training ----------------------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        """Called once before the first step (e.g. to store frozen zero-shot features)."""

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, text_feats: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(logits, labels)
        return ce, {"ce": float(ce.detach())}

    # -- tuned weights -----------------------------------------------------------------------------------------
    def tuned_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.trainable().items()}

    def load_tuned(self, state: dict[str, torch.Tensor]) -> None:
        own = self.trainable()
        missing, unexpected = set(own) - set(state), set(state) - set(own)
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

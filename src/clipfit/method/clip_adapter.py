"""CLIP-Adapter (Gao et al., "CLIP-Adapter: Better Vision-Language Models with Feature Adapters", IJCV 2024): a
bottleneck MLP on the image feature, blended with the feature it reads.

With x the image encoder's projected feature before normalisation (what the reference's `image_encoder` returns)
and A(x) = ReLU(W2 ReLU(W1 x)), W1: D -> D/4, W2: D/4 -> D, no biases:

    x' = alpha A(x) + (1 - alpha) x,   logits = s * normalise(x') normalise(t)^T

s is the model's logit scale, t the class text features of the dataset's template. alpha = 0 is zero-shot CLIP
exactly. ViT-B/16 (D = 512): 2 x 512 x 128 = 131,072 parameters. The reference builds Adapter(1024, 4), the width of
its RN50 backbone; here the width is the model's projection dimension.

Training: the image encoder is frozen, so training runs on features the frozen encoder computed once (no
back-propagation through CLIP): `views` randomly augmented views of every training image are cached, and epoch e
trains on view e mod views, standing in for the fresh augmentation the reference draws every epoch.
`clip_adapter+ln` (CLIPFit Table 4, "+UL") also tunes the image encoder's LayerNorms; it then trains through CLIP
on augmented images.

Choices where the references are silent (each an option): the recipe (`clipfit.recipes.CLIP_ADAPTER`: CoOp's
optimiser and few-shot epochs); alpha 0.2 for every dataset (the code's constant; the paper tunes it per dataset
without saying on which split).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import recipes
from ..config import opt
from ..errors import ClipfitError
from .base import Method, MethodConfig, register_method, register_preset


@dataclass
class ClipAdapterConfig(MethodConfig):
    alpha: float = opt(0.2, "residual ratio: x' = alpha A(x) + (1 - alpha) x (the code's 0.2; 0 is zero-shot CLIP)")
    reduction: int = opt(4, "bottleneck: D -> D / reduction -> D (the paper's 4)", range="[1, inf)")
    views: int = opt(10, "augmented views per training image cached when the image encoder is frozen; epoch e trains "
                         "on view e mod views (0: one un-augmented view)")


@register_method("clip_adapter")
class ClipAdapter(Method[ClipAdapterConfig]):
    """CLIP-Adapter: a residual bottleneck MLP (D -> D/4 -> D, ReLU, no bias) on the image feature (131,072 on ViT-B/16)."""

    Config = ClipAdapterConfig
    recipe = recipes.CLIP_ADAPTER
    mergeable = False  # a non-linear module after the encoder

    def build(self) -> None:
        dim = self.backbone.embed_dim
        if dim // self.cfg.reduction < 1:
            raise ClipfitError(f"--set reduction={self.cfg.reduction}: must be between 1 and the feature width {dim}")
        hidden = dim // self.cfg.reduction
        self.adapter = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.ReLU(),
                                     nn.Linear(hidden, dim, bias=False), nn.ReLU())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.adapter:
            if isinstance(m, nn.Linear):
                m.reset_parameters()  # PyTorch's default initialisation, as the reference

    @property
    def trains_on_features(self) -> bool:
        return not self.backbone_trains

    @property
    def view_per_epoch(self) -> bool:
        return True

    @property
    def text_is_static(self) -> bool:
        return not self.text_tower_trains

    def frozen_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_image(pixel_values, normalize=False)

    def adapt_image_features(self, feats: torch.Tensor) -> torch.Tensor:
        a = self.cfg.alpha
        x = feats.to(next(self.adapter.parameters()).dtype)
        return F.normalize(a * self.adapter(x) + (1.0 - a) * x, dim=-1)


register_preset("clip_adapter+ln", "clip_adapter", "CLIP-Adapter with the image encoder's LayerNorms tuned together "
                "(CLIPFit Table 4 '+UL'; 131,072 + 39,936 on ViT-B/16)", layernorm=True, layernorm_tower="vision")

"""Tuning existing weights of CLIP, as the comparisons of CLIPFit and of the LayerNorm tuning paper need them.

- `bitfit` (Zaken et al. 2021, applied to CLIP as in CLIPFit Sec. 1 and Table 5): every bias of the text encoder
  (`tower=text`, Table 5 (b)) or of both encoders (`tower=both`, Table 5 (a)), cross-entropy only, CLIPFit's
  optimiser (SGD lr 0.002, momentum 0.9, weight decay 5e-4, batch 32, cosine, one warm-up epoch at 1e-5).
  On ViT-B/16: text 68,096 (Table 5 (b) prints 67.6K = 67,584: the 12 blocks' biases without the final LayerNorm's
  512), both 171,008 (Table 5 (a): 0.17M).
- `full`: every parameter of both encoders, the projections and the temperature (149,620,737 on ViT-B/16, LayerNorm
  tuning paper Fig. 2), with that paper's recipe (AdamW 5e-4, weight decay 0.02, cosine), which it reports as
  unstable; lower it with `--set lr=1e-5` for a gentler baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import recipes
from ..config import opt
from .base import GroupTuning, TowerConfig, register_method

BITFIT_GROUPS = {"both": ["text_bias", "vision_bias"], "text": ["text_bias"], "vision": ["vision_bias"]}
FULL_GROUPS = {"both": ["all"], "text": ["text_all"], "vision": ["vision_all"]}


@dataclass
class BitFitConfig(TowerConfig):
    tower: str = opt("both", "biases tuned: of both encoders (CLIPFit Table 5 (a)), of the text encoder ((b)) or of the "
                             "image encoder", tuple(BITFIT_GROUPS))


@register_method("bitfit")
class BitFit(GroupTuning[BitFitConfig]):
    """BitFit on CLIP: every bias of both encoders (or of one, `tower=text`), cross-entropy only (CLIPFit Table 5)."""

    Config = BitFitConfig
    recipe = recipes.BITFIT
    GROUPS = BITFIT_GROUPS


@dataclass
class FullConfig(TowerConfig):
    tower: str = opt("both", "parameters tuned: all (both encoders, projections, temperature), or one encoder with its "
                             "projection", tuple(FULL_GROUPS))


@register_method("full")
class FullFineTune(GroupTuning[FullConfig]):
    """Full fine-tuning: every parameter of the model (the LayerNorm tuning paper's baseline; 149,620,737 on ViT-B/16)."""

    Config = FullConfig
    recipe = recipes.LAYERNORM_TUNING
    GROUPS = FULL_GROUPS

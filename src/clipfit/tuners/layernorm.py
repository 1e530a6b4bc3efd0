"""LayerNorm tuning, from "How to Adapt Your Large-Scale Vision-and-Language Model" (Kim et al.): the gains and
biases of every LayerNorm of both encoders (65,536 parameters on ViT-B/16), nothing else.

The paper's two ways of combining it with methods that add parameters are settings every method has
(`clipfit.tuners.base.MethodConfig`):
- tuned together: `layernorm=true` (the `<method>+ln` presets), the LayerNorms train alongside the added parameters;
- as initialisation: `init_from=RUN_DIR`, a first `layernorm` run's tuned LayerNorms are loaded into the backbone
  before the second method is built (any run that tuned backbone weights can be a first stage).

Recipe: `clipfit.recipes.LAYERNORM_TUNING` (the paper's appendix A.3), used by every method of that paper here.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import recipes
from ..config import opt
from .base import LN_GROUPS, GroupTuning, MethodConfig, register_method


@dataclass
class LayerNormConfig(MethodConfig):
    tower: str = opt("both", "LayerNorms tuned: of both encoders (the paper's), only the text or only the image encoder",
                     tuple(LN_GROUPS))


@register_method("layernorm")
class LayerNormTuning(GroupTuning):
    """LayerNorm tuning ("How to Adapt Your Large-Scale Vision-and-Language Model"): every LayerNorm of both encoders."""

    Config = LayerNormConfig
    recipe = recipes.LAYERNORM_TUNING
    GROUPS = LN_GROUPS

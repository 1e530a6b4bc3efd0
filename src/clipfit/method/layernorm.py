"""LayerNorm tuning, from "How to Adapt Your Large-Scale Vision-and-Language Model" (Kim et al.): the gains and
biases of every LayerNorm of both encoders (65,536 parameters on ViT-B/16), nothing else.

The paper's two ways of combining it with methods that add parameters are settings every method has
(`clipfit.method.base.MethodConfig`):
- tuned together: `layernorm=true` (the `<method>+ln` presets), the LayerNorms train alongside the added parameters;
- as initialisation: `init_from=RUN_DIR`, a first `layernorm` run's tuned LayerNorms are loaded into the backbone
  before the second method is built (any run that tuned backbone weights can be a first stage).

Recipe: `clipfit.recipes.LAYERNORM_TUNING` (the paper's appendix A.3), used by every method of that paper here.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import recipes
from ..config import opt
from ..errors import ClipfitError
from .base import LN_GROUPS, GroupTuning, TowerConfig, block_index, register_method


@dataclass
class LayerNormConfig(TowerConfig):
    tower: str = opt("both", "LayerNorms tuned: of both encoders (the paper's), only the text or only the image encoder",
                     tuple(LN_GROUPS))
    last_blocks: int = opt(0, "tune only the LayerNorms inside the last K residual blocks of each encoder (the LayerNorm "
                              "paper's appendix figure 'tuning a subset of trainable LayerNorm parameters', K = 2 ... "
                              "12); 0 = every LayerNorm", range="[0, inf)")


@register_method("layernorm")
class LayerNormTuning(GroupTuning[LayerNormConfig]):
    """LayerNorm tuning ("How to Adapt Your Large-Scale Vision-and-Language Model"): every LayerNorm of both encoders."""

    Config = LayerNormConfig
    recipe = recipes.LAYERNORM_TUNING
    GROUPS = LN_GROUPS

    def build(self) -> None:
        super().build()
        k = self.cfg.last_blocks
        if k:
            model = self.backbone.model
            for tower in (model.text_model, model.vision_model):
                blocks = len(tower.encoder.layers)
                if k > blocks:
                    raise ClipfitError(f"setting last_blocks={k}: the encoders have {blocks} blocks")
            for n, p in model.named_parameters():  # the LayerNorms outside the blocks, and those of earlier blocks
                if p.requires_grad:
                    i = block_index(n)
                    tower = model.text_model if n.startswith("text") else model.vision_model
                    if i is None or i < len(tower.encoder.layers) - k:
                        p.requires_grad_(False)

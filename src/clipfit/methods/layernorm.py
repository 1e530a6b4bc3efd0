"""LayerNorm tuning (seed 003, "How to Adapt Your Large-Scale Vision-and-Language Model"), and the two ways of
combining it with methods that add parameters:

- tuned together: the LayerNorm gains and biases train alongside the added parameters (`layernorm=true`, or the
  `<method>+ln` names);
- as initialisation: a first `layernorm` run's tuned LayerNorms are loaded into the backbone before the second
  method is built (`init_from=RUN_DIR`; generic: any run that tuned backbone weights can be a first stage).

Training recipe of seed 003 (Appendix A.3), used by every method of that paper here: AdamW, lr 5e-4, weight
decay 0.02, cosine annealing, the best epoch on validation, 100 epochs in the low-data regime (50 in the
high-data regime: `--set epochs=50`). The paper gives no batch size and no warm-up; we use batch 32 and none.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import opt
from .base import Method, register_method

LN_GROUPS = {
    "both": ["text_layernorm", "vision_layernorm"],
    "text": ["text_layernorm"],
    "vision": ["vision_layernorm"],
}

# Seed 003, Appendix A.3 ("Training Procedure"): the same recipe for all fine-tuning methods.
PAPER003_TRAIN = {"optimizer": "adamw", "lr": 5e-4, "weight_decay": 0.02, "scheduler": "cosine",
                  "warmup_epochs": 0, "epochs": 100, "batch_size": 32}

INIT_FROM_HELP = ("run directory of a first stage (e.g. a `layernorm` run) whose tuned backbone weights initialise "
                  "this run (seed 003: 'fine-tuned LayerNorm as initialization'); '' = the pre-trained weights")


@dataclass
class LayerNormConfig:
    tower: str = opt("both", "LayerNorms tuned: of both encoders (seed 003), only the text or only the image encoder",
                     tuple(LN_GROUPS))
    init_from: str = opt("", INIT_FROM_HELP)


@register_method("layernorm")
class LayerNormTuning(Method):
    """LayerNorm tuning (seed 003): gains and biases of every LayerNorm of both encoders (65,536 on ViT-B/16)."""

    Config = LayerNormConfig
    train_defaults = PAPER003_TRAIN

    def build(self) -> None:
        self.unfreeze(*LN_GROUPS[self.cfg.tower])


@dataclass
class WithLayerNorm:
    """Settings shared by the methods that can be combined with LayerNorm tuning (seed 003, Sec. 3.3)."""

    layernorm: bool = opt(False, "also tune the LayerNorms, together with this method's parameters (seed 003 'Normal')")
    layernorm_tower: str = opt("both", "LayerNorms tuned when layernorm=true", tuple(LN_GROUPS))
    init_from: str = opt("", INIT_FROM_HELP)


class LayerNormCombinable(Method):
    """A method whose config derives from WithLayerNorm; call `tune_layernorm()` in `build`."""

    def tune_layernorm(self, tower: str | None = None) -> None:
        if self.cfg.layernorm:
            self.unfreeze(*LN_GROUPS[tower or self.cfg.layernorm_tower])

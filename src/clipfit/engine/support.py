"""Which methods run on which model family, decided from the model's config before a model or an image is loaded.

Methods ask the family adapter (`clipfit.families`, through the Backbone) for what they use: towers, projections,
LayerNorms, FFN biases, attention q/k/v, the embedding width, the scoring. The prompt methods (CoOp and its
successors, prompt tuning, MaPLe, PromptSRC) place their context at the family's first text token (`text_start`) and
read the feature where its text tower pools: at the end-of-text token of a causal tower (CLIP, MetaCLIP 2), or at
the last position of a fixed-length, bidirectional one (SigLIP, SigLIP 2). A family whose text tower pools
otherwise would be refused them here.
"""
from __future__ import annotations

from typing import Any

from ..backbone import checkpoint_family
from ..errors import ClipfitError
from ..families import Family
from ..method import METHODS
from ..method.deep_prompts import DeepPromptMethod
from ..method.prompt import PromptTuning

PROMPT_POOLING = ("eos", "last")  # the text poolings the prompt methods read (`Family.text_pooling`)


def unsupported(method: str, family: Family) -> str | None:
    """Why `method` (a registered name, preset included) does not run on `family`'s models; None when it does."""
    if issubclass(METHODS.get(method).cls, (PromptTuning, DeepPromptMethod)) and family.text_pooling not in PROMPT_POOLING:
        return (f"it reads the prompt's feature at the end-of-text token or at the last position; this family's text "
                f"tower pools {family.text_pooling!r}")
    return None


def check_supported(method: str, family: Family) -> None:
    """A one-line error when `method` does not run on `family`'s models."""
    why = unsupported(method, family)
    if why:
        raise ClipfitError(f"method {method!r} does not run on {family.title} models (model_type "
                           f"{family.model_type!r}) yet: {why}; `clipfit methods --model MODEL` lists those that do")


def check_method_on_model(method: str, model: str | None, backbone: Any = None) -> None:
    """Before anything loads: a one-line error for a model of a family clipfit does not adapt, or for a method that
    does not run on the model's family (read from `backbone` when loaded, else from the model's config.json)."""
    family = backbone.family if backbone is not None else checkpoint_family(model)
    if family is not None:  # None: the config cannot be read; loading the model says why
        check_supported(method, family)

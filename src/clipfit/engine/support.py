"""Which methods run on which model family, decided before a model or an image is loaded.

Every method runs on the families whose modules carry CLIP's names (CLIP, MetaCLIP 2: the same towers and
projections; prompt methods pool at the last real token, MetaCLIP 2's end-of-text whatever its id). On SigLIP and
SigLIP 2 only the methods that use nothing but the backbone's own encoders, scoring and feature before the projection
run: the others' code still reads CLIP's module names and layout (`text_projection`, `visual_projection`, a start
token before the prompt, causal attention pooled at the end-of-text token), which the family adapters
(`clipfit.families`) now declare for them to ask instead.
"""
from __future__ import annotations

from typing import Any

from ..backbone import checkpoint_family
from ..errors import ClipfitError
from ..families import Family

CLIP_LAYOUT = frozenset({"clip", "metaclip_2"})  # families with CLIP's module names: every method runs
FAMILY_AGNOSTIC = ("zeroshot", "linear_probe")  # methods that run on every family


def unsupported(method: str, family: Family) -> str | None:
    """Why `method` (a registered name, preset included) does not run on `family`'s models; None when it does."""
    if family.name in CLIP_LAYOUT or method in FAMILY_AGNOSTIC:
        return None
    return ("its code reads CLIP's modules and prompt layout (text_projection, visual_projection, a start token, "
            "end-of-text pooling), not yet what the family adapter declares")


def check_supported(method: str, family: Family) -> None:
    """A one-line error when `method` does not run on `family`'s models, naming the methods that do."""
    why = unsupported(method, family)
    if why:
        raise ClipfitError(f"method {method!r} does not run on {family.title} models (model_type "
                           f"{family.model_type!r}) yet: {why}; methods that do: {', '.join(FAMILY_AGNOSTIC)}")


def check_method_on_model(method: str, model: str | None, backbone: Any = None) -> None:
    """Before anything loads: a one-line error for a model of a family clipfit does not adapt, or for a method that
    does not run on the model's family (read from `backbone` when loaded, else from the model's config.json)."""
    family = backbone.family if backbone is not None else checkpoint_family(model)
    if family is not None:  # None: the config cannot be read; loading the model says why
        check_supported(method, family)

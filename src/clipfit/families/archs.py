"""Named architectures of the SigLIP family (`hub.FAMILY_ARCHS`) for parameter counts on a random initialisation
(no download).

Sizes from the checkpoints' public config.json files: google/siglip-base-patch16-224 sets text hidden 768,
intermediate 3072, 12 heads, vocabulary 32,000 and vision patch 16; everything else is SiglipConfig's default
(12 layers in each tower, text length 64, image 224, text projection 768). SigLIP 2's fixed-resolution base
checkpoints are SiglipModels with the same towers and the Gemma tokenizer's vocabulary of 256,000 (config.json of
google/siglip2-base-patch16-512 sets only that and its image size; the 224 one is taken to differ only in the
image size, transformers' default 224).
"""
from __future__ import annotations

import torch
import transformers

from ..errors import ClipfitError
from ..hub import FAMILY_ARCHS
from .base import FAMILIES, Family, Model

ARCHS = FAMILY_ARCHS  # the table itself lives in hub (the command line lists its names without importing torch)


def arch_model(arch: str) -> tuple[Family, Model]:
    """(family, model with the architecture's shapes) on the meta device: parameters have shapes, no memory."""
    if arch not in ARCHS:
        raise ClipfitError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    a = ARCHS[arch]
    family = FAMILIES.get(a["family"])
    config = getattr(transformers, family.model_class.replace("Model", "Config"))(
        text_config=dict(a["text"], bos_token_id=None, eos_token_id=1, pad_token_id=1), vision_config=a["vision"])
    with torch.device("meta"):
        return family, getattr(transformers, family.model_class)(config)

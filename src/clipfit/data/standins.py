"""Synthetic stand-ins that carry the recipe rules of the dataset they stand for.

`synth_imagenet` is `synth` (the pretraining world, no shift) run under ImageNet's per-dataset rules (`rules_as`):
CLIPFit's 10 epochs, CoOp's and LLU's 50, Tip-Adapter's ImageNet configuration. `clipfit paper run --stand-ins`
puts it where a table has ImageNet, so that the stand-in grid resolves the settings the real grid would.
"""
from __future__ import annotations

from .registry import DATASETS, register_dataset
from .types import Task


@register_dataset("synth_imagenet", needs_root=False, rules_as="imagenet",
                  help="synth under ImageNet's recipe rules (CLIPFit 10 epochs, CoOp 50): ImageNet's stand-in")
def build_synth_imagenet(root: str | None = None) -> Task:
    return DATASETS.get("synth").builder(root).with_splits(name="synth_imagenet")

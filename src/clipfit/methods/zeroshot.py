"""Zero-shot CLIP: hand-written prompts, nothing trains."""
from __future__ import annotations

from .base import Method, register_method


@register_method("zeroshot")
class ZeroShot(Method):
    """Zero-shot CLIP with the dataset's template (or a list of templates, features averaged)."""

    train_defaults = {"epochs": 0}

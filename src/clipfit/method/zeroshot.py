"""Zero-shot CLIP: hand-written prompts, nothing trains.

Templates (`--set templates=...`): `dataset` (the dataset's one template, or `--template`), `imagenet80` (the 80
prompt templates CLIP's authors engineered for ImageNet; the LayerNorm tuning paper evaluates zero-shot CLIP with
this ensemble), or
a user list separated by '|', e.g. "a photo of a {}.|a sketch of a {}.". With several templates the class text
feature is the normalised mean of the templates' normalised features.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import recipes
from ..config import opt
from ..data.types import check_template
from .base import Method, MethodConfig, register_method

# The 80 ImageNet prompt templates of CLIP (Radford et al. 2021, "Prompt_Engineering_for_ImageNet" notebook).
IMAGENET_TEMPLATES = [
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.", "a painting of a {}.",
    "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.", "a cropped photo of a {}.",
    "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.",
    "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.", "a {} in a video game.",
    "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.", "a photo of a {}.",
    "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.",
    "a sketch of the {}.", "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.",
    "a jpeg corrupted photo of the {}.", "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.",
    "a photo of the small {}.", "a photo of the weird {}.", "the cartoon {}.", "art of the {}.",
    "a drawing of the {}.", "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.",
    "a dark photo of a {}.", "itap of a {}.", "graffiti of the {}.", "a toy {}.",
    "itap of my {}.", "a photo of a cool {}.", "a photo of a small {}.", "a tattoo of the {}.",
]
assert len(IMAGENET_TEMPLATES) == 80 and len(set(IMAGENET_TEMPLATES)) == 80


def resolve_templates(spec: str, key: str = "templates") -> list[str] | None:
    """None for 'dataset'; the 80 ImageNet templates for 'imagenet80'; else the '|'-separated list, each template
    checked (`check_template`; `key`: the setting, for its error)."""
    spec = spec.strip()
    if spec in ("", "dataset"):
        return None
    if spec == "imagenet80":
        return list(IMAGENET_TEMPLATES)
    out = [t.strip() for t in spec.split("|") if t.strip()]
    for t in out:
        check_template(t, f"--set {key}:")
    return out


@dataclass
class ZeroShotConfig(MethodConfig):
    templates: str = opt("dataset", "prompt templates: dataset (its one template), imagenet80 (CLIP's 80-template "
                                    "ensemble, features averaged), or a '|'-separated list with {} for the class name",
                         check=lambda key, value: resolve_templates(value, key))


@register_method("zeroshot")
class ZeroShot(Method[ZeroShotConfig]):
    """Zero-shot CLIP with the dataset's template, a template list, or CLIP's 80-template ImageNet ensemble."""

    Config = ZeroShotConfig
    recipe = recipes.ZERO_SHOT

    def build(self) -> None:
        own = resolve_templates(self.cfg.templates)
        if own is not None:
            self.templates = own

    @property
    def uses_dataset_template(self) -> bool:
        return resolve_templates(self.cfg.templates) is None

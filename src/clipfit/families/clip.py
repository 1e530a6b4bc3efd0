"""CLIP (transformers CLIPModel) and MetaCLIP 2 (MetaClip2Model): the same two towers, pooled at the end-of-text
token and at the class token, projected by bias-free Linears, scored exp(logit_scale) * cos."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import Family, ImageSpec, register_family, resample_name, size_of


@register_family
class Clip(Family):
    name = "clip"
    title = "CLIP"
    model_type = "clip"
    model_class = "CLIPModel"
    text_projection = "text_projection"
    vision_projection = "visual_projection"
    vision_pre_norm = "vision_model.pre_layrnorm"
    text_pooling = "eos"
    text_padding = "longest"
    text_mask = True
    text_causal = True
    vision_prefix = 1
    image_pooling = "the class token's final state after the post LayerNorm (pooler_output)"
    scoring = "exp(logit_scale) * cos"

    def pooled_index(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        """The first end-of-text token; for configs with eos_token_id 2 (saved before transformers fixed it), the
        largest id, as transformers' CLIP text model does (the end-of-text id is the largest of CLIP's BPE)."""
        eos = model.config.text_config.eos_token_id
        if eos == 2:
            return input_ids.to(torch.int).argmax(-1)
        return (input_ids.to(torch.int) == eos).int().argmax(-1)

    def image_spec(self, processor: Any) -> ImageSpec:
        crop = getattr(processor, "crop_size", None)
        size = size_of(crop, "height", "shortest_edge") or size_of(processor.size, "height", "shortest_edge")
        return ImageSpec(size=size, mean=tuple(processor.image_mean), std=tuple(processor.image_std),
                         resize=size_of(processor.size, "shortest_edge", "height") or size, crop=True,
                         resample=resample_name(processor))


@register_family
class MetaClip2(Clip):
    """MetaCLIP 2 (worldwide CLIP): CLIP's architecture; its text tower always pools at the first eos_token_id
    (2 in the released XLM-V-tokenized weights, without CLIP's legacy argmax rule)."""

    name = "metaclip_2"
    title = "MetaCLIP 2"
    model_type = "metaclip_2"
    model_class = "MetaClip2Model"

    def pooled_index(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        return (input_ids.to(torch.int) == model.config.text_config.eos_token_id).int().argmax(-1)

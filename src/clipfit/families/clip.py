"""CLIP (transformers CLIPModel) and MetaCLIP 2 (MetaClip2Model): the same two towers, pooled at the end-of-text
token and at the class token, projected by bias-free Linears, scored exp(logit_scale) * cos."""
from __future__ import annotations

from typing import Any

import torch

from .base import Family, ImageSpec, Model, register_family, resample_name, size_of


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

    def pooled_index(self, model: Model, input_ids: torch.Tensor) -> torch.Tensor:
        """The first end-of-text token; for configs with eos_token_id 2 (saved before transformers fixed it), the
        largest id, as transformers' CLIP text model does (the end-of-text id is the largest of CLIP's BPE)."""
        eos = model.config.text_config.eos_token_id
        if eos == 2:
            return input_ids.to(torch.int).argmax(-1)
        return input_ids.to(torch.int).eq(eos).int().argmax(-1)

    def image_spec(self, processor: Any) -> ImageSpec:
        """The shortest edge resized to `size`, then the centre crop `crop_size`."""
        return ImageSpec(size=size_of(processor, "height", "shortest_edge"), mean=tuple(processor.image_mean),
                         std=tuple(processor.image_std), resize=size_of(processor, "shortest_edge", "height",
                                                                        attrs=("size",)),
                         crop=True, resample=resample_name(processor))


@register_family
class MetaClip2(Clip):
    """MetaCLIP 2 (worldwide CLIP): CLIP's architecture; its text tower always pools at the first eos_token_id
    (2 in the released XLM-V-tokenized weights, without CLIP's legacy argmax rule)."""

    name = "metaclip_2"
    title = "MetaCLIP 2"
    model_type = "metaclip_2"
    model_class = "MetaClip2Model"

    def pooled_index(self, model: Model, input_ids: torch.Tensor) -> torch.Tensor:
        return input_ids.to(torch.int).eq(model.config.text_config.eos_token_id).int().argmax(-1)

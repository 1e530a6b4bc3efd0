"""SigLIP (transformers SiglipModel, also SigLIP 2's fixed-resolution checkpoints) and SigLIP 2 NaFlex
(Siglip2Model), fed square images.

The text tower reads ids padded to its full length (64 positions in the released models), without an attention
mask (as trained: the padding is attended to), and pools the last position, then a Linear `head` (with bias) maps
it to the shared space. The image tower has no class token and no pre-LayerNorm; an attention-pooling head (a
learned probe attending to all patch states, then LayerNorm + MLP) makes the image embedding, with no projection
after it. Scores: exp(logit_scale) * cos + logit_bias (trained under a sigmoid loss).
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import ClipfitError
from .base import Family, ImageSpec, Model, config_field, register_family, resample_name, size_of, square_side


@register_family
class Siglip(Family):
    name = "siglip"
    title = "SigLIP and SigLIP 2 fixed-resolution"
    model_type = "siglip"
    model_class = "SiglipModel"
    text_projection = "text_model.head"
    vision_projection = None
    vision_pooler = "vision_model.head"
    logit_bias = "logit_bias"
    text_pooling = "last"
    text_padding = "max_length"
    text_mask = False
    text_causal = False
    vision_prefix = 0
    image_pooling = "the attention-pooling head's output (it is also the image embedding: there is no projection)"
    scoring = "exp(logit_scale) * cos + logit_bias"

    def check(self, config: Any) -> None:
        vision = config_field(config, "vision_config")
        if vision is not None and config_field(vision, "vision_use_head") is False:
            raise ClipfitError(f"this {self.model_class} has no attention-pooling head (vision_use_head=false, as "
                               "in the vision towers of multimodal LLMs), so no image embedding to compare with "
                               "text; use a SigLIP checkpoint with both towers")

    def pooled_index(self, model: Model, input_ids: torch.Tensor) -> torch.Tensor:
        """The last position, whatever token holds it (padding to the full length puts it at the same place)."""
        return torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, dtype=torch.long, device=input_ids.device)

    def image_spec(self, processor: Any) -> ImageSpec:
        size = size_of(processor, "height", "shortest_edge", attrs=("size",))
        return ImageSpec(size=size, mean=tuple(processor.image_mean), std=tuple(processor.image_std), resize=size,
                         crop=False, resample=resample_name(processor))


@register_family
class Siglip2(Siglip):
    """SigLIP 2's NaFlex checkpoints (Siglip2Model) at one square resolution: the image is resized to a square of
    sqrt(max_num_patches) patches a side and cut into patches here (NaFlex's own processor keeps the aspect
    ratio and varies the number of patches: that part is not used; every image is squared, as SigLIP's are)."""

    name = "siglip2"
    title = "SigLIP 2 NaFlex, fed square images"
    model_type = "siglip2"
    model_class = "Siglip2Model"

    def check(self, config: Any) -> None:
        super().check(config)
        vision = config_field(config, "vision_config")
        if vision is not None:
            square_side(int(config_field(vision, "num_patches")), "the vision config's num_patches")

    def vision_inputs(self, model: Model, pixel_values: torch.Tensor) -> dict[str, Any]:
        """Patches [B, N, P*P*C] in the order of transformers' Siglip2 image processor (rows of patches, each patch
        row-major with channels last), the patch grid of each image; no attention mask (an image fills every
        patch: the same as a mask of ones, and methods may append tokens)."""
        p = model.config.vision_config.patch_size
        b, c, h, w = pixel_values.shape
        if h != w or h % p:
            raise ClipfitError(f"images of {h}x{w} pixels: this Siglip2Model takes squares whose side is a multiple "
                               f"of {p}")
        patches = pixel_values.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, p * p * c)
        grid = torch.tensor([[h // p, w // p]], device=pixel_values.device).expand(b, 2)
        return {"pixel_values": patches, "pixel_attention_mask": None, "spatial_shapes": grid}

    def image_spec(self, processor: Any) -> ImageSpec:
        side = processor.patch_size * square_side(processor.max_num_patches, "the image processor's max_num_patches")
        return ImageSpec(size=side, mean=tuple(processor.image_mean), std=tuple(processor.image_std), resize=side,
                         crop=False, resample=resample_name(processor))

"""MaPLe: multi-modal prompt learning (Khattak et al., CVPR 2023).

Learned: text prompts P_0..P_{J-1} (n_ctx = 2 tokens of the text width each; P_0 is the shallow context initialised
from "a photo of a") and coupling functions F_0..F_{J-1}, each a Linear(text width -> vision width) with bias. The
image prompts are not parameters: V_j = F_j(P_j), so the image prompts follow the text prompts. Both are inserted by
the deep-prompt mechanism (`deep_prompts`): text rows 1..2 and 2 tokens appended to the image sequence, replaced
before layers 2..J. ViT-B/16, J = 9: 9 x 2 x 512 + 9 x (512 x 768 + 768) = 3,555,072 parameters. Loss:
cross-entropy.
"""
from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .. import recipes
from .base import register_method
from .deep_prompts import DeepPromptConfig, DeepPromptMethod


@register_method("maple")
class MaPLe(DeepPromptMethod[DeepPromptConfig]):
    """MaPLe: deep text prompts (2 tokens, depth 9) coupled to image prompts by Linear maps (3,555,072 on ViT-B/16)."""

    Config = DeepPromptConfig
    recipe = recipes.MAPLE

    def text_depth(self) -> int:  # one J for both towers: the coupling maps text prompt j to image prompt j
        return min(super().text_depth(), len(self.backbone.model.vision_model.encoder.layers))

    def build_vision(self) -> tuple[int, int]:
        cfg = self.backbone.model.config
        width_t, width_v = cfg.text_config.hidden_size, cfg.vision_config.hidden_size
        self.coupling = nn.ModuleList([nn.Linear(width_t, width_v) for _ in range(self.text_depth())])
        return self.cfg.n_ctx, len(self.coupling)

    def vision_prompt(self, j: int) -> torch.Tensor:
        return self.coupling[j](self.text_prompts[j])

    def reset_parameters(self) -> None:
        super().reset_parameters()  # P_0 from the init words, P_1.. ~ N(0, 0.02^2)
        for lin in self.coupling:  # PyTorch's default Linear initialisation, as the reference
            cast(nn.Linear, lin).reset_parameters()

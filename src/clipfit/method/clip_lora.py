"""CLIP-LoRA (Zanella & Ben Ayed, "Low-Rank Few-Shot Adaptation of Vision-Language Models", CVPR Workshops 2024):
low-rank updates of the query, key and value projections of every attention layer of both encoders.

Each adapted Linear y = W x + b becomes

    y = W x + b + s * B A dropout(x),   A: r x d_in (Kaiming-uniform, a = sqrt 5), B: d_out x r (zeros)

with s = alpha / sqrt(r) (the reference's code; `scaling_rule=r` gives the LoRA paper's alpha / r) and dropout
only on the low-rank branch, only in training. B = 0 at the start, so the model starts as zero-shot CLIP exactly.
ViT-B/16, r = 2: 12 x 3 x 2 x (512 + 512) = 73,728 (text) + 12 x 3 x 2 x (768 + 768) = 110,592 (image) = 184,320.

The update is added by forward hooks (`ForwardHooks`) on transformers' q_proj / k_proj / v_proj (/ out_proj) Linear modules, so
the backbone keeps the parameter names of a plain CLIP and the low-rank factors live in the method
(`lora.<tower>.<layer>.<q|k|v|o>.A|B`). `export --merged` folds s B A into W (`merge_into_backbone`): the exported
checkpoint is a plain transformers CLIP that computes the same logits.

Recipe (`clipfit.recipes.CLIP_LORA`, fixed for every dataset in the reference): AdamW lr 2e-4, weight decay 0.01,
batch 32, 500 x shots iterations with a per-iteration cosine to 1e-6, the last iterate kept. Where we differ: the
reference runs fp16 autocast with a grad scaler and multiplies by a literal 100; here fp32 (bf16 autocast on CUDA)
and the model's own logit scale. PEFT's LoRA with `use_rslora=True` computes the same update; it is not used so that
the backbone keeps plain parameter names (tuned-weight files, two-stage runs and exports rely on them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import recipes
from ..config import opt
from ..errors import ClipfitError
from .base import Method, MethodConfig, register_method
from .shared import ForwardHooks, HookFn

PROJECTIONS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "out_proj"}  # transformers' attention Linear names
SCALING = ("sqrt_r", "r")


@dataclass
class ClipLoraConfig(MethodConfig):
    r: int = opt(2, "rank of each low-rank update (the reference's 2)", range="[1, inf)")
    alpha: float = opt(1.0, "LoRA alpha: the update is scaled by alpha / sqrt(r) or alpha / r (the reference's 1)")
    dropout: float = opt(0.25, "dropout on the input of the low-rank branch, in training (the reference's 0.25)",
                         range="[0, 1)")
    scaling_rule: str = opt("sqrt_r", "scale s = alpha / sqrt(r) (the reference's code, rsLoRA) or alpha / r (the LoRA "
                                      "paper's)", SCALING)
    targets: str = opt("q,k,v", "attention projections adapted in every layer: comma-separated from q, k, v, o "
                                "(o: the output projection)")
    encoder: str = opt("both", "encoders adapted", ("both", "text", "vision"))


class LoRA(nn.Module):
    """The low-rank branch s * B A dropout(x) of one Linear layer."""

    def __init__(self, linear: nn.Linear, r: int, dropout: float, scale: float):
        super().__init__()
        w = linear.weight
        self.A = nn.Parameter(torch.empty(r, linear.in_features, device=w.device, dtype=w.dtype))
        self.B = nn.Parameter(torch.empty(linear.out_features, r, device=w.device, dtype=w.dtype))
        self.dropout = nn.Dropout(dropout)
        self.scale = scale
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        nn.init.zeros_(self.B)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.linear(self.dropout(x), self.A), self.B)

    def delta(self) -> torch.Tensor:
        """s B A: what the branch adds to the Linear's weight."""
        return self.scale * self.B @ self.A


@register_method("clip_lora")
class ClipLora(Method[ClipLoraConfig]):
    """CLIP-LoRA: rank-2 updates of q, k, v in every attention layer of both encoders (184,320 on ViT-B/16)."""

    Config = ClipLoraConfig
    recipe = recipes.CLIP_LORA
    mergeable = True  # s B A folds into W (`merge_into_backbone`)

    def build(self) -> None:
        cfg = self.cfg
        targets = [t.strip() for t in cfg.targets.split(",") if t.strip()]
        bad = [t for t in targets if t not in PROJECTIONS]
        if not targets or bad:
            raise ClipfitError(f"--set targets={cfg.targets}: choose from {', '.join(PROJECTIONS)} (comma-separated)")
        scale = cfg.alpha / (math.sqrt(cfg.r) if cfg.scaling_rule == "sqrt_r" else cfg.r)
        names = ["text", "vision"] if cfg.encoder == "both" else [cfg.encoder]
        self.lora = nn.ModuleDict()
        self._sites: list[tuple[nn.Linear, LoRA]] = []
        self._hooks = ForwardHooks(exclusive="LoRA branches")
        for name in names:
            # the encoder layers' self-attention, as the family declares them (not a pooling head's attention)
            layers = [layer.self_attn for layer in self.backbone.family.parts(self.backbone.model).tower(name).layers]
            self.lora[name] = per_tower = nn.ModuleList()
            for attn in layers:
                per_layer = nn.ModuleDict()
                for t in targets:
                    linear = getattr(attn, PROJECTIONS[t])
                    branch = per_layer[t] = LoRA(linear, cfg.r, cfg.dropout, scale)
                    self._sites.append((linear, branch))
                    self._hooks.after(linear, self._hook_for(branch))
                per_tower.append(per_layer)

    @staticmethod
    def _hook_for(branch: LoRA) -> HookFn:
        return lambda out, inputs: out + branch(inputs[0])

    @property
    def image_tower_frozen(self) -> bool:
        return self.cfg.encoder == "text" and super().image_tower_frozen  # its branches hook the encoders' layers

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for _, branch in self._sites:
                branch.reset_parameters()

    @property
    def text_is_static(self) -> bool:
        return not self.text_tower_trains and "text" not in self.lora

    def merge_into_backbone(self) -> None:
        """W <- W + s B A for every adapted Linear, and the hooks removed: the plain backbone then computes what
        this method computes (in eval mode, where the branch has no dropout)."""
        if not self._hooks.attached:
            return  # merged already
        with torch.no_grad():
            for linear, branch in self._sites:
                linear.weight.add_(branch.delta().to(linear.weight.dtype))
        self._hooks.remove()

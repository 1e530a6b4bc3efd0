"""Adapters (Houlsby et al. 2019) and compacters (Mahabadi et al. 2021) in the text encoder (LayerNorm tuning paper,
Sec. 3.2).

A bottleneck block h -> h + up(act(down(h))) is applied to the output of the FFN of every text-encoder layer
(before the layer's residual sum), through a forward hook on the FFN module (`ForwardHooks`): the backbone's parameter
names stay those of a plain CLIP, and the added weights live in the method (`adapters.<layer>.*`).

Adapter: down Linear(width -> r) and up Linear(r -> width) with biases. ViT-B/16 text width 512, r = 24:
12 x ((512*24 + 24) + (24*512 + 512)) = 301,344 parameters (its Fig. 2).

Compacter: each projection W (m x d) is a sum of Kronecker products, W = sum_i A_i (x) (s_i t_i^T), with n = 4 global
n x n matrices A_i shared by every layer and both projections, and layer-local rank-1 factors s_i, t_i.
ViT-B/16: down 4*(128 + 6) + 24 bias, up 4*(6 + 128) + 512 bias, x 12 layers, + 4*4*4 shared = 19,360 (the paper's count).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, cast

import torch
from torch import nn

from .. import recipes
from ..backbone import ffn_linears
from ..config import opt
from ..errors import ClipfitError
from .base import Method, MethodConfig, register_method, register_preset
from .shared import ForwardHooks, HookFn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def _trunc_normal_(t: torch.Tensor, std: float) -> None:
    nn.init.trunc_normal_(t, std=std, a=-2 * std, b=2 * std)


class Bottleneck(nn.Module):
    """h + up(act(down(h))), Houlsby's near-identity initialisation (weights ~ N(0, 1e-2) truncated at 2 std)."""

    def __init__(self, width: int, bottleneck: int, activation: str):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, width)

    def reset_parameters(self, std: float = 1e-2) -> None:
        for lin in (self.down, self.up):
            _trunc_normal_(lin.weight, std)
            nn.init.zeros_(lin.bias)

    def forward(self, h: torch.Tensor, shared: torch.Tensor | None = None) -> torch.Tensor:
        return h + self.up(self.act(self.down(h)))


class PHMLinear(nn.Module):
    """x -> x W + b with W = sum_i A_i (x) (s_i t_i^T) of shape [m, d]; A [n, n, n] is passed in (shared)."""

    def __init__(self, m: int, d: int, n: int):
        super().__init__()
        if m % n or d % n:
            raise ClipfitError(f"compacter: dimensions {m} and {d} must be multiples of n={n}; change --set phm_n=")
        self.m, self.d, self.n = m, d, n
        self.s = nn.Parameter(torch.zeros(n, m // n))
        self.t = nn.Parameter(torch.zeros(n, d // n))
        self.bias = nn.Parameter(torch.zeros(d))

    def reset_parameters(self, std: float) -> None:
        _trunc_normal_(self.s, std)
        _trunc_normal_(self.t, std)
        nn.init.zeros_(self.bias)

    def weight(self, a: torch.Tensor) -> torch.Tensor:
        # W[(a, x), (b, y)] = sum_i A[i, a, b] s[i, x] t[i, y]: the Kronecker product A_i (x) (s_i t_i^T), summed
        w = torch.einsum("iab,ix,iy->axby", a, self.s, self.t)
        return w.reshape(self.m, self.d)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return x @ self.weight(a).to(x.dtype) + self.bias.to(x.dtype)


class CompacterBlock(nn.Module):
    def __init__(self, width: int, bottleneck: int, n: int, activation: str):
        super().__init__()
        self.down = PHMLinear(width, bottleneck, n)
        self.act = ACTIVATIONS[activation]()
        self.up = PHMLinear(bottleneck, width, n)

    def reset_parameters(self, std: float = 0.1) -> None:
        self.down.reset_parameters(std)
        self.up.reset_parameters(std)

    def forward(self, h: torch.Tensor, shared: torch.Tensor | None = None) -> torch.Tensor:
        return h + self.up(self.act(self.down(h, shared)), shared)


@dataclass
class AdapterConfig(MethodConfig):
    bottleneck: int = opt(24, "bottleneck width of each adapter (the paper's: 24)", range="[1, inf)")
    activation: str = opt("relu", "non-linearity between the projections (the paper gives none)", tuple(ACTIVATIONS))


@dataclass
class CompacterConfig(MethodConfig):
    bottleneck: int = opt(24, "bottleneck width of each compacter (the paper's: 24)", range="[1, inf)")
    phm_n: int = opt(4, "number n of shared n x n matrices A_i (the paper's: 4 of 4 x 4)", range="[1, inf)")
    activation: str = opt("gelu", "non-linearity between the projections (Compacter paper: GELU)", tuple(ACTIVATIONS))


BC = TypeVar("BC", bound=MethodConfig)


class FFNBlocks(Method[BC]):
    """A block (`make_block`) on the output of the FFN of every text-encoder layer, added by forward hooks."""

    recipe = recipes.LAYERNORM_TUNING
    mergeable = False

    def make_block(self, width: int) -> nn.Module:
        raise NotImplementedError

    def shared(self) -> torch.Tensor | None:
        """What every block also reads (the compacter's shared matrices); default: nothing."""
        return None

    def build(self) -> None:
        text = self.backbone.model.text_model
        ffns = ffn_linears(text)
        if not ffns:
            raise ClipfitError("the text encoder has no FFN blocks to attach adapters to")
        self.adapters = nn.ModuleList([self.make_block(fc2.out_features) for _, _, fc2 in ffns])
        self._hooks = ForwardHooks(exclusive="adapters of another method")
        for (name, _, _), block in zip(ffns, self.adapters):
            self._hooks.after(text.get_submodule(name), self._hook_for(block))
        self.reset_parameters()

    def _hook_for(self, block: nn.Module) -> HookFn:
        return lambda out, inputs: block(out, self.shared())

    def remove(self) -> None:
        """Detach the adapters from the backbone (the backbone then computes plain CLIP again)."""
        self._hooks.remove()


@register_method("adapter")
class Adapter(FFNBlocks[AdapterConfig]):
    """Bottleneck adapters (width 24) after the FFN of every text-encoder layer (LayerNorm tuning paper; 301,344 on ViT-B/16)."""

    Config = AdapterConfig

    def make_block(self, width: int) -> nn.Module:
        return Bottleneck(width, self.cfg.bottleneck, self.cfg.activation)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for block in self.adapters:
                cast(Bottleneck, block).reset_parameters()


@register_method("compacter")
class Compacter(FFNBlocks[CompacterConfig]):
    """Compacters (bottleneck 24, 4 shared 4x4 matrices, rank-1 local factors) in the text encoder (LayerNorm tuning paper; 19,360)."""

    Config = CompacterConfig

    def build(self) -> None:
        n = self.cfg.phm_n
        self.phm_rule = nn.Parameter(torch.zeros(n, n, n))  # the shared A_1..A_n
        super().build()

    def make_block(self, width: int) -> nn.Module:
        return CompacterBlock(width, self.cfg.bottleneck, self.cfg.phm_n, self.cfg.activation)

    def shared(self) -> torch.Tensor:
        return self.phm_rule

    def reset_parameters(self) -> None:
        # A_i ~ Xavier normal (std 0.5 for 4x4), s, t ~ N(0, 0.1): W entries have std ~ sqrt(n)*0.5*0.01 = 0.01,
        # the scale of Houlsby's near-identity adapter initialisation
        with torch.no_grad():
            for a in self.phm_rule:
                nn.init.xavier_normal_(a)
            for block in self.adapters:
                cast(CompacterBlock, block).reset_parameters(0.1)


_NORMAL = "with the LayerNorms of both encoders tuned together (LayerNorm tuning paper, Table 1 'Normal')"
register_preset("adapter+ln", "adapter", f"adapters {_NORMAL}", layernorm=True)
register_preset("compacter+ln", "compacter", f"compacters {_NORMAL}", layernorm=True)

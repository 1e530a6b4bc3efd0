"""What several methods share: the zero-shot anchor of the methods that distil toward zero-shot CLIP's class text
features (CLIPFit, KgCoOp, ProGrad, PromptSRC), and the forward hooks by which methods add their computation to the
backbone's modules (adapters, CLIP-LoRA, deep prompts)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import ClipfitError


class ZeroShotAnchor:
    """The frozen zero-shot class text features [C, D] a method distils toward, and the distances to them.

    `teacher()` computes them with the frozen model (e.g. the method's `text_features` before anything trained, or a
    template ensemble); `Method.on_train_start` captures them once, in fp32, when the method's `anchor` is set. The
    distances are computed in fp32 whatever the autocast precision of the features, so that a term is never lost to
    bf16 rounding."""

    def __init__(self, teacher: Callable[[], torch.Tensor]):
        self.teacher = teacher
        self._text: torch.Tensor | None = None

    def capture(self) -> None:
        with torch.no_grad():
            self._text = self.teacher().detach().float()

    @property
    def text(self) -> torch.Tensor:
        """The captured features [C, D] (fp32)."""
        if self._text is None:
            raise RuntimeError("the zero-shot anchor was not captured: on_train_start was not called")
        return self._text

    def cosine_distance(self, text: torch.Tensor) -> torch.Tensor:
        """1 - mean_c cos(t_c, t_c^zs) (CLIPFit's and KgCoOp's code)."""
        return 1.0 - F.cosine_similarity(text.float(), self.text, dim=-1).mean()

    def squared_distance(self, text: torch.Tensor) -> torch.Tensor:
        """mean_c ||t_c - t_c^zs||^2 (KgCoOp's paper; twice the cosine distance for unit vectors)."""
        return ((text.float() - self.text) ** 2).sum(-1).mean()

    def l1_distance(self, text: torch.Tensor) -> torch.Tensor:
        """The mean absolute difference (PromptSRC)."""
        return F.l1_loss(text.float(), self.text)

    def logits(self, image: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Zero-shot logits scale x image @ t_zs^T of image features [B, D] (a teacher's, for distillation)."""
        return scale.float() * image.float() @ self.text.t()


HookFn = Callable[[torch.Tensor, tuple[Any, ...]], torch.Tensor]


class ForwardHooks:
    """Forward hooks by which a method adds its computation to modules of the backbone, so that the backbone keeps the
    parameter names of a plain CLIP and the added weights live in the method.

    `after(module, fn)` replaces a module's output by fn(output, inputs); `before(module, fn)` replaces its hidden
    states (its first input) by fn(hidden). The hooks act while `active`: always by default; hooks made with
    active=False act only inside `on()`. `exclusive` names what the hooks add: a module that already carries a
    method's exclusive hooks is refused (one line: load a fresh backbone). `remove()` detaches them all, after which
    the backbone computes plain CLIP again."""

    MARK = "_clipfit_hooked"

    def __init__(self, exclusive: str = "", active: bool = True):
        self.exclusive, self.active = exclusive, active
        self._handles: list[RemovableHandle] = []
        self._marked: list[nn.Module] = []

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def _claim(self, module: nn.Module) -> None:
        if not self.exclusive:
            return
        if getattr(module, self.MARK, False):
            raise ClipfitError(f"this backbone already carries {self.exclusive}; load a fresh backbone")
        setattr(module, self.MARK, True)
        self._marked.append(module)

    def after(self, module: nn.Module, fn: HookFn) -> None:
        self._claim(module)

        def hook(mod: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
            return fn(output, inputs) if self.active else None

        self._handles.append(module.register_forward_hook(hook))

    def before(self, module: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor], name: str = "hidden_states") -> None:
        """`name`: the keyword of the hidden states when the module is called with keywords."""
        self._claim(module)

        def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
            if not self.active:
                return None
            if args:
                return (fn(args[0]), *args[1:]), kwargs
            return args, {**kwargs, name: fn(kwargs[name])}

        self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        """Switch the hooks on for the forward passes inside the block."""
        was, self.active = self.active, True
        try:
            yield
        finally:
            self.active = was

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        for m in self._marked:
            setattr(m, self.MARK, False)
        self._handles, self._marked = [], []

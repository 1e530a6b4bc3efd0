"""Deep prompts in both CLIP towers: the mechanism MaPLe and PromptSRC share (they differ in where the image prompts
come from and in the loss).

Text tower: the class prompt is the tokenised "<ctx_init> <class name>." with its first n_ctx init tokens replaced by
learned context P_0 (rows 1..n after the start token; see `DeepPromptConfig.keep_init_words` for init phrases longer
than n_ctx). Before each of the layers 2..J the rows 1..n of the hidden states are replaced by the layer's prompt P_j;
the layers after J carry what the prompts became. The text tower keeps its causal + padding mask (it is run by
`encode_text_embeds`); the class name and the end token come after the prompt rows, so they attend to them. On
SigLIP the rows start at 0 (the family's `text_start`: no start token) and the prompt keeps the tower's length.

Image tower: n tokens V_0 are appended after the positional embedding (before the pre-LayerNorm), the last n tokens
are replaced by V_j before each of the layers 2..J, and the class token is read as usual. The vision encoder has no
attention mask: every token, the class token included, attends to the prompts.

Both insertions are forward hooks on the transformers modules (the embeddings and the encoder layers; `ForwardHooks`),
so the backbone's parameter names stay those of a plain CLIP. The hooks act only while a tower's prompts are switched
on (`ForwardHooks.on()`), which `text_features` and `image_features` do; outside them the towers compute plain CLIP
(the frozen teacher PromptSRC needs, and the backbone's own `encode_*`).

Depth J is capped at the encoder's number of layers (9 on a 12-layer ViT-B/16; 4 on the embedded mini-clip).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from ..config import opt
from ..errors import ClipfitError
from .base import Method, MethodConfig, warn_same_prompts
from .prompt import encode_with_context
from .shared import ForwardHooks

PROMPT_STD = 0.02  # the references' N(0, 0.02^2) initialisation of prompts not initialised from words


def insert_prompts(hooks: ForwardHooks, tower: Any, kind: str, n: int, depth: int,
                   prompt: Callable[[int], torch.Tensor], start: int = 1) -> None:
    """Hook prompts into one encoder tower ('text' or 'vision'). `prompt(j)` gives the [n, width] tokens of layer j
    (0-based; j = 0 is the input of the first layer, vision only: the text prompt P_0 is part of the token sequence
    the method builds); layers 1..depth-1 get theirs before they run. Text prompts are rows start..start+n-1 (the
    family's `text_start`)."""

    def tokens(j: int, like: torch.Tensor) -> torch.Tensor:
        return prompt(j).to(like.dtype)[None].expand(like.shape[0], -1, -1)

    def replace(j: int) -> Callable[[torch.Tensor], torch.Tensor]:
        def fn(h: torch.Tensor) -> torch.Tensor:
            p = tokens(j, h)
            if kind == "vision":
                return torch.cat([h[:, :-n], p], dim=1)
            return torch.cat([h[:, :start], p, h[:, start + n:]], dim=1)

        return fn

    for j in range(1, depth):
        hooks.before(tower.encoder.layers[j], replace(j))
    if kind == "vision":  # [CLS, patches..., V_0]
        hooks.after(tower.embeddings, lambda out, inputs: torch.cat([out, tokens(0, out)], dim=1))


@dataclass
class DeepPromptConfig(MethodConfig):
    n_ctx: int = opt(2, "learned text tokens per layer (MaPLe: 2)", range="[1, inf)")
    depth: int = opt(9, "prompt depth J: layers 1..J receive prompts (capped at the encoder's number of layers)",
                     range="[1, inf)")
    ctx_init: str = opt("a photo of a", "words whose token embeddings initialise the context P_0; the class prompt "
                                        "is '<ctx_init> <class name>.' with its first n_ctx tokens learned")
    keep_init_words: bool = opt(True, "init words beyond the first n_ctx stay as fixed tokens before the class name "
                                      "(the reference code: MaPLe learns 'a photo' and keeps 'of a'); false drops them")


D = TypeVar("D", bound=DeepPromptConfig)


class DeepPromptMethod(Method[D]):
    """Deep text prompts `text_prompts` [J, n, width] (P_0 the shallow context) and image prompts from
    `vision_prompt(j)`, inserted by forward hooks (`insert_prompts`). Subclasses build the image side
    (`build_vision`)."""

    Config = DeepPromptConfig
    mergeable = False  # prompts are not weights of a plain CLIP

    # -- what trains -------------------------------------------------------------------------------------------
    def text_depth(self) -> int:
        return min(self.cfg.depth, len(self.backbone.model.text_model.encoder.layers))

    def build_vision(self) -> tuple[int, int]:
        """Add the image-side modules; returns (tokens per layer, depth) of the image prompts."""
        raise NotImplementedError

    def vision_prompt(self, j: int) -> torch.Tensor:
        """The image prompt [n, vision width] of layer j."""
        raise NotImplementedError

    def build(self) -> None:
        cfg = self.cfg
        tm, vm = self.backbone.model.text_model, self.backbone.model.vision_model
        self.text_prompts = nn.Parameter(torch.zeros(self.text_depth(), cfg.n_ctx, tm.config.hidden_size))
        n_vision, vision_depth = self.build_vision()
        words = cfg.ctx_init.strip()
        self._init_ids = (self.backbone.tokenizer([words], add_special_tokens=False, return_tensors="pt")["input_ids"][0]
                          if words else torch.zeros(0, dtype=torch.long))
        self._start = self.backbone.family.text_start(self.backbone.tokenizer)
        self._text_hooks, self._vision_hooks = ForwardHooks(active=False), ForwardHooks(active=False)
        insert_prompts(self._text_hooks, tm, "text", cfg.n_ctx, self.text_prompts.shape[0], lambda j: self.text_prompts[j],
                       self._start)
        insert_prompts(self._vision_hooks, vm, "vision", n_vision, vision_depth, self.vision_prompt)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """P_0 from the init words' embeddings (the first n_ctx of them; fewer words fill the last rows), the other
        rows and P_1.. ~ N(0, 0.02^2)."""
        with torch.no_grad():
            self.text_prompts.normal_(0.0, PROMPT_STD)
            emb = self.backbone.model.text_model.embeddings.token_embedding
            if len(self._init_ids) and not emb.weight.is_meta:
                n = self.cfg.n_ctx
                init = emb(self._init_ids.to(emb.weight.device))[:n].to(self.text_prompts)
                self.text_prompts[0, n - len(init):] = init

    def remove(self) -> None:
        """Detach the prompts from the backbone (it computes plain CLIP again)."""
        self._text_hooks.remove()
        self._vision_hooks.remove()

    # -- classes and features ----------------------------------------------------------------------------------
    @property
    def uses_dataset_template(self) -> bool:
        return False

    def set_classes(self, classnames: Sequence[str]) -> None:
        self.classnames = list(classnames)
        n, k = self.cfg.n_ctx, len(self._init_ids)
        learned = min(n, k)  # init tokens the context replaces
        dropped = learned if self.cfg.keep_init_words else k
        n_pos = self.backbone.model.text_model.config.max_position_embeddings
        texts = [f"{self.cfg.ctx_init.strip()} {c}.".strip() for c in self.classnames]
        if self.backbone.family.text_padding == "max_length":  # SigLIP: exactly the encoder's length with the context
            tok = self.backbone.tokenizer(texts, padding="max_length", truncation=True, padding_side="right",
                                          max_length=n_pos - n + dropped, return_tensors="pt")
        else:
            tok = self.backbone.tokenizer(texts, padding=True, truncation=True, max_length=n_pos - (n - learned),
                                          return_tensors="pt")
        ids, mask, s = tok["input_ids"], tok["attention_mask"], self._start
        if k and not self.backbone.model.text_model.embeddings.token_embedding.weight.is_meta \
                and not torch.equal(ids[:, s:s + k], self._init_ids[None].expand(len(ids), -1)):
            raise ClipfitError(f"--set ctx_init={self.cfg.ctx_init!r}: its tokens change when a class name follows; "
                               "end it with a whole word")
        # [SOS] (context replaces init tokens 1..learned) <kept init tokens> <class name> . [EOS] (SigLIP: no [SOS])
        self._ids = torch.cat([ids[:, :s], ids[:, s + dropped:]], dim=1)
        self._mask = torch.cat([mask[:, :s], mask[:, s + dropped:]], dim=1)
        warn_same_prompts(self.classnames, (self._ids, self._mask))

    def text_features(self) -> torch.Tensor:
        with self._text_hooks.on():
            return encode_with_context(self.backbone, self._ids, self._mask, self.text_prompts[0], self._start)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        with self._vision_hooks.on():
            return self.backbone.encode_image(pixel_values)

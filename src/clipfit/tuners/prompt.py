"""Prompt tuning of the text encoder (LayerNorm tuning paper, Sec. 3.2; CoOp-style): n learned context vectors are placed between
the start token and the class name, with no hand-written template: [SOS] v_1 ... v_n <class name> [EOS].

The text tower is run from input embeddings with the same steps as transformers' CLIPTextTransformer: token
embeddings (with the context spliced in) + position embeddings -> encoder with the causal and padding mask ->
final LayerNorm -> the hidden state at the EOS position (the last attended token) -> text projection.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import recipes
from ..backbone import Backbone
from ..config import opt
from ..errors import ClipfitError
from .base import Method, MethodConfig, register_method, register_preset


def _attention_mask(text_model: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor):
    """The 4-D causal + padding mask transformers' CLIP text model builds (for its attention implementation)."""
    try:
        from transformers.masking_utils import create_causal_mask

        return create_causal_mask(config=text_model.config, inputs_embeds=hidden, attention_mask=attention_mask,
                                  past_key_values=None)
    except (ImportError, TypeError):  # another transformers version: an explicit additive mask works everywhere
        t = hidden.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=hidden.device).tril()
        keep = causal[None, None] & attention_mask[:, None, None, :].bool()
        return torch.zeros(keep.shape, dtype=hidden.dtype, device=hidden.device).masked_fill(
            ~keep, torch.finfo(hidden.dtype).min)


def encode_text_embeds(backbone: Backbone, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Projected (unnormalised) text features from token-level input embeddings [B, T, H] (right padding)."""
    tm = backbone.model.text_model
    t = inputs_embeds.shape[1]
    n_pos = tm.embeddings.position_embedding.weight.shape[0]
    if t > n_pos:
        raise ClipfitError(f"prompt of {t} tokens is longer than the text encoder's {n_pos} positions")
    positions = torch.arange(t, device=inputs_embeds.device)[None]
    hidden = inputs_embeds + tm.embeddings.position_embedding(positions)
    mask = _attention_mask(tm, hidden, attention_mask)
    hidden = tm.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
    hidden = tm.final_layer_norm(hidden)
    idx = torch.arange(t, device=hidden.device)
    eos = (attention_mask.to(hidden.device).long() * (idx + 1)).argmax(-1)  # last attended position: EOS
    pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), eos]
    return backbone.model.text_projection(pooled)


@dataclass
class PromptConfig(MethodConfig):
    n_ctx: int = opt(8, "learned context vectors before the class name (the LayerNorm tuning paper: 8 vectors of the text "
                        "width, 4,096 parameters on ViT-B/16)", range="[1, inf)")
    ctx_init: str = opt("", "words whose token embeddings initialise the last context vectors (CoOp's ctx_init, e.g. "
                            "'a photo of a'); the others, and all when empty, ~ N(0, 0.02) as CoOp's generic context")
    suffix: str = opt("", "text after the class name ('' = the raw class name, as the LayerNorm tuning paper; CoOp appends '.')")


@register_method("prompt")
class PromptTuning(Method):
    """Prompt tuning (LayerNorm tuning paper / CoOp): 8 learned context vectors before the class name, no template."""

    Config = PromptConfig
    recipe = recipes.LAYERNORM_TUNING
    mergeable = False  # the context vectors are not weights of a plain CLIP

    def build(self) -> None:
        if self.cfg.n_ctx < 1:
            raise ClipfitError(f"--set n_ctx={self.cfg.n_ctx}: need at least one context vector")
        emb = self.backbone.model.text_model.embeddings.token_embedding
        self.ctx = nn.Parameter(torch.zeros(self.cfg.n_ctx, emb.weight.shape[1]))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.ctx.normal_(0.0, 0.02)
            words = self.cfg.ctx_init.strip()
            emb = self.backbone.model.text_model.embeddings.token_embedding
            if words and not emb.weight.is_meta:
                ids = self.backbone.tokenizer([words], add_special_tokens=False, return_tensors="pt")["input_ids"][0]
                ids = ids[-self.cfg.n_ctx:].to(emb.weight.device)
                self.ctx[self.cfg.n_ctx - len(ids):] = emb(ids).to(self.ctx.dtype).to(self.ctx.device)

    @property
    def uses_dataset_template(self) -> bool:
        return False

    def set_classes(self, classnames: Sequence[str]) -> None:
        self.classnames = list(classnames)
        n_pos = self.backbone.model.text_model.config.max_position_embeddings
        texts = [f"{c}{self.cfg.suffix}" for c in self.classnames]
        tok = self.backbone.tokenizer(texts, padding=True, truncation=True, max_length=n_pos - self.cfg.n_ctx,
                                      return_tensors="pt")
        self._ids, self._mask = tok["input_ids"], tok["attention_mask"]

    def text_features(self) -> torch.Tensor:
        emb = self.backbone.model.text_model.embeddings.token_embedding
        dev = emb.weight.device
        ids, mask = self._ids.to(dev), self._mask.to(dev)
        tok = emb(ids)
        c = ids.shape[0]
        ctx = self.ctx.to(tok.dtype)[None].expand(c, -1, -1)
        x = torch.cat([tok[:, :1], ctx, tok[:, 1:]], dim=1)  # [SOS] context <class name> [EOS] padding
        m = torch.cat([mask[:, :1], mask.new_ones(c, self.cfg.n_ctx), mask[:, 1:]], dim=1)
        return F.normalize(encode_text_embeds(self.backbone, x, m), dim=-1)


register_preset("prompt+ln", "prompt", "prompt tuning with the LayerNorms of both encoders tuned together (LayerNorm tuning paper, Table 1 'Normal')", layernorm=True)

"""Prompt tuning of the text encoder with learned context vectors (CoOp's prompt learner), used by the LayerNorm
tuning paper's `prompt` method and by CoOp's family (`clipfit.method.coop`).

A class prompt is a sequence of token embeddings: [SOS], M learned context vectors, the class name, a fixed suffix
(CoOp: "."), [EOS]. The class name sits after the context ('end', CoOp's default), in its middle ('middle': the
first floor(M/2) vectors, the name, the rest) or before it ('front'). The context is one set shared by all classes,
or one set per class (CoOp's class-specific context, `csc`). It is initialised from the token embeddings of words
(`ctx_init`, placed in the last positions) and N(0, 0.02^2) or zeros elsewhere.

The text tower is run from input embeddings with the same steps as transformers' CLIPTextTransformer: token
embeddings (with the context spliced in) + position embeddings -> encoder with the causal and padding mask ->
final LayerNorm -> the hidden state at the EOS position (the last attended token) -> text projection. On families
read elsewhere (SigLIP: no start token, bidirectional, pooled at the last of its fixed 64 positions) the context
starts at the family's `text_start`, the prompt keeps the tower's length (context rows replace placeholders), and
the family's own text forward reads it at its pooled position (`Family.encode_text_embeds`).
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .. import recipes
from ..backbone import Backbone
from ..config import opt
from ..errors import ClipfitError
from .base import Method, MethodConfig, register_method, register_preset, warn_same_prompts

POSITIONS = ("end", "middle", "front")
FROM_TEMPLATE = "template"  # ctx_init / suffix taken from the dataset's template (the text before / after '{}')


@functools.cache
def _cache_argument(create_causal_mask: Any) -> str:
    """The name transformers' `create_causal_mask` gives its cache argument (renamed; the old name warns)."""
    return "cache" if "cache" in inspect.signature(create_causal_mask).parameters else "past_key_values"


def _attention_mask(text_model: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor) -> Any:
    """The 4-D causal + padding mask transformers' CLIP text model builds (for its attention implementation)."""
    try:
        from transformers.masking_utils import create_causal_mask

        no_cache = {_cache_argument(create_causal_mask): None}  # its name depends on the transformers version
        return create_causal_mask(config=text_model.config, inputs_embeds=hidden, attention_mask=attention_mask,
                                  **no_cache)
    except (ImportError, TypeError):  # another transformers version: an explicit additive mask works everywhere
        t = hidden.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=hidden.device).tril()
        keep = causal[None, None] & attention_mask[:, None, None, :].bool()
        return torch.zeros(keep.shape, dtype=hidden.dtype, device=hidden.device).masked_fill(
            ~keep, torch.finfo(hidden.dtype).min)


def encode_text_embeds(backbone: Backbone, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                       chunk: int = 0) -> torch.Tensor:
    """Projected (unnormalised) text features from token-level input embeddings [B, T, H] (right padding).

    `chunk` > 0: at most that many prompts through the encoder at once; when gradients are recorded, each chunk's
    activations are recomputed in the backward pass (activation checkpointing) instead of kept, so the memory is one
    chunk's whatever the number of classes. The features and gradients are the unchunked ones (each prompt is
    encoded on its own row)."""
    if chunk <= 0 or len(inputs_embeds) <= chunk:
        return _encode_text_embeds(backbone, inputs_embeds, attention_mask)
    out = []
    for i in range(0, len(inputs_embeds), chunk):
        x, m = inputs_embeds[i:i + chunk], attention_mask[i:i + chunk]
        if torch.is_grad_enabled():
            out.append(checkpoint(_encode_text_embeds, backbone, x, m, use_reentrant=False))
        else:
            out.append(_encode_text_embeds(backbone, x, m))
    return torch.cat(out)


def _encode_text_embeds(backbone: Backbone, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    family = backbone.family
    if family.text_pooling != "eos":  # e.g. SigLIP: the family's own text forward, read where it pools
        where = family.pooled_index(backbone.model, attention_mask)  # (the mask has the ids' shape [B, T])
        return family.encode_text_embeds(backbone.model, inputs_embeds, attention_mask, where)
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


def encode_with_context(backbone: Backbone, ids: torch.Tensor, mask: torch.Tensor, ctx: torch.Tensor,
                        start: int = 1) -> torch.Tensor:
    """Normalised text features of token ids [C, T] (right padding) with context vectors ctx [n, H] spliced in
    at position `start` (the family's `text_start`: after CLIP's start token, 1; SigLIP, 0):
    <ids before start> ctx_1 .. ctx_n <the rest of the ids>."""
    emb = backbone.model.text_model.embeddings.token_embedding
    dev = emb.weight.device
    ids, mask = ids.to(dev), mask.to(dev)
    tok = emb(ids)
    c, n = ids.shape[0], ctx.shape[0]
    x = torch.cat([tok[:, :start], ctx.to(tok.dtype)[None].expand(c, -1, -1), tok[:, start:]], dim=1)
    m = torch.cat([mask[:, :start], mask.new_ones(c, n), mask[:, start:]], dim=1)
    return F.normalize(encode_text_embeds(backbone, x, m), dim=-1)


def insert_context(token_embeds: torch.Tensor, ctx: torch.Tensor, ctx_pos: torch.Tensor) -> torch.Tensor:
    """Token embeddings [..., C, T, H] with rows `ctx_pos` [C, M] of each class replaced by the context `ctx`
    (broadcastable to [..., C, M, H]: [M, H] shared, [C, M, H] per class, [B, 1, M, H] per image)."""
    lead = torch.broadcast_shapes(token_embeds.shape[:-2], ctx.shape[:-2])
    t, h = token_embeds.shape[-2:]
    m = ctx_pos.shape[-1]
    x = token_embeds.expand(*lead, t, h)
    src = ctx.to(x.dtype).expand(*lead, m, h)
    index = ctx_pos.to(x.device).expand(*lead, m)[..., None].expand(*lead, m, h)
    return x.scatter(-2, index, src)


@dataclass
class PromptConfig(MethodConfig):
    n_ctx: int = opt(8, "learned context vectors (the LayerNorm tuning paper: 8 vectors of the text width, 4,096 "
                        "parameters on ViT-B/16)", range="[1, inf)")
    ctx_init: str = opt("", "words whose token embeddings initialise the last context vectors (CoOp's ctx_init, e.g. "
                            "'a photo of a'; 'template' = the dataset template's words before '{}', as ProGrad); "
                            "the other vectors, and all when empty, as ctx_rest says")
    ctx_rest: str = opt("normal", "context vectors ctx_init does not cover: normal = N(0, 0.02^2) (CoOp's generic "
                                  "context), zeros (ProGrad)", ("normal", "zeros"))
    suffix: str = opt("", "text after the class name ('' = the raw class name, as the LayerNorm tuning paper; CoOp "
                          "appends '.'; 'template' = the dataset template's text after '{}')")
    class_token_position: str = opt("end", "where the class name goes: after the context (end), between its two "
                                           "halves (middle), before it (front) (CoOp)", POSITIONS)
    csc: bool = opt(False, "class-specific context: one set of n_ctx vectors per class (CoOp's CSC); the method then "
                           "cannot classify classes it was not trained on")
    text_chunk: int = opt(0, "prompts the text encoder takes at once (0 = all classes together); with more, in chunks "
                             "of this many, each chunk's activations recomputed in the backward pass: the memory of "
                             "one chunk, the same results (for many classes, e.g. ImageNet's 1,000)", range="[0, inf)")


PC = TypeVar("PC", bound=PromptConfig)


@register_method("prompt")
class PromptTuning(Method[PC]):
    """Prompt tuning (LayerNorm tuning paper / CoOp): 8 learned context vectors before the class name, no template."""

    Config = PromptConfig
    recipe = recipes.LAYERNORM_TUNING
    mergeable = False  # the context vectors are not weights of a plain CLIP
    ctx: Any  # an nn.Parameter once the classes are set (None before)
    _token_cache: tuple[Any, torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def agnostic_for(cls, cfg: Any) -> bool:
        return not cfg.csc

    def build(self) -> None:
        self.class_agnostic = self.agnostic_for(self.cfg)
        self.ctx = None  # created with the classes (its shape depends on them when class-specific)

    def _template_parts(self) -> tuple[str, str]:
        """The dataset template's text before and after '{}'."""
        before, sep, after = self.templates[0].partition("{}")
        if not sep:
            raise ClipfitError(f"template {self.templates[0]!r} has no '{{}}' where the class name goes")
        return before.strip(), after

    def _init_words(self) -> str:
        words = self.cfg.ctx_init.strip()
        return self._template_parts()[0] if words == FROM_TEMPLATE else words

    def reset_parameters(self) -> None:
        if self.ctx is None:
            return
        with torch.no_grad():
            if self.cfg.ctx_rest == "zeros":
                self.ctx.zero_()
            else:
                self.ctx.normal_(0.0, 0.02)
            words = self._init_words()
            emb = self.backbone.model.text_model.embeddings.token_embedding
            if words and not emb.weight.is_meta:
                ids = self.backbone.tokenizer([words], add_special_tokens=False, return_tensors="pt")["input_ids"][0]
                if len(ids) > self.cfg.n_ctx:
                    raise ClipfitError(f"ctx_init {words!r} is {len(ids)} tokens; set n_ctx to at least {len(ids)}")
                vecs = emb(ids.to(emb.weight.device)).to(self.ctx.dtype).to(self.ctx.device)
                self.ctx[..., self.cfg.n_ctx - len(ids):, :] = vecs

    @property
    def uses_dataset_template(self) -> bool:
        return False

    def _layout(self, classnames: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token ids [C, T], attention mask [C, T] and the positions of the context rows [C, M] of the prompts.

        The name and the suffix are tokenised together (as CoOp tokenises 'X X X X name.'); the name's own token
        count splits them for the middle and front positions. The context starts at the family's `text_start` (after
        CLIP's start token; first for SigLIP). Context rows hold a placeholder id. A prompt longer than the text
        encoder's positions loses name/suffix tokens at its end (the context and the special tokens stay).
        Families read at a fixed length (SigLIP: `text_padding` max_length) get prompts of exactly the encoder's
        length, padded on the right, and the name tokenised as it reads after a word (after 'a', whose tokens are
        then dropped: a Gemma-like tokenizer marks a word's leading space)."""
        m, pos = self.cfg.n_ctx, self.cfg.class_token_position
        suffix = self._template_parts()[1] if self.cfg.suffix == FROM_TEMPLATE else self.cfg.suffix
        tok = self.backbone.tokenizer
        fixed = self.backbone.family.text_padding == "max_length"
        bare = [int(i) for i in tok("a", add_special_tokens=False)["input_ids"]]
        lead = bare if fixed else []
        before = "a " if fixed else ""
        full = tok([f"{before}{c}{suffix}" for c in classnames])["input_ids"]
        names = tok([f"{before}{c}" for c in classnames])["input_ids"]
        start = self.backbone.family.text_start(tok)
        specials = len(tok("a")["input_ids"]) - len(bare)  # CLIP: start and end tokens; SigLIP: the end token
        n_pos = self.backbone.model.text_model.config.max_position_embeddings
        if m + specials > n_pos:
            raise ClipfitError(f"--set n_ctx={m}: the text encoder has {n_pos} positions, room for at most "
                               f"{n_pos - specials} context vectors")
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        rows, ctx_rows = [], []
        for seq, name in zip(full, names):
            seq = [int(i) for i in seq]
            end = len(seq) - (specials - start)
            if seq[start:start + len(lead)] != lead:
                raise ClipfitError(f"the tokenizer reads 'a' differently before the class name in {seq!r}")
            head, body, tail = seq[:start], seq[start + len(lead):end], seq[end:]
            body = body[:n_pos - specials - m]
            k = min(max(len(name) - specials - len(lead), 0), len(body))  # the name's tokens at the start of `body`
            if pos == "end":
                parts = [[None] * m, body]
            elif pos == "middle":
                parts = [[None] * (m // 2), body[:k], [None] * (m - m // 2), body[k:]]
            else:
                parts = [body[:k], [None] * m, body[k:]]
            row = head + [i for p in parts for i in p] + tail
            ctx_rows.append([j for j, i in enumerate(row) if i is None])
            fill = head[0] if head else pad
            rows.append([fill if i is None else i for i in row])
        t = n_pos if fixed else max(map(len, rows))
        ids = torch.tensor([r + ([pad] if fixed else [r[-1]]) * (t - len(r)) for r in rows], dtype=torch.long)
        mask = torch.tensor([[1] * len(r) + [0] * (t - len(r)) for r in rows], dtype=torch.long)
        return ids, mask, torch.tensor(ctx_rows, dtype=torch.long)

    def set_classes(self, classnames: Sequence[str]) -> None:
        classnames = list(classnames)
        if self.ctx is not None and self.cfg.csc and len(classnames) != self.ctx.shape[0]:
            raise ClipfitError(f"method {self.name!r} learned a context per class (csc=true); it cannot classify "
                               "other classes")
        self._ids, self._mask, self._ctx_pos = self._layout(classnames)
        self._token_cache = None
        self.classnames = classnames
        if not self.cfg.csc:  # a context per class tells classes apart whatever their names
            warn_same_prompts(classnames, (self._ids, self._mask))
        if self.ctx is None:
            width = self.backbone.model.text_model.embeddings.token_embedding.weight.shape[1]
            shape = (len(classnames), self.cfg.n_ctx, width) if self.cfg.csc else (self.cfg.n_ctx, width)
            self.ctx = nn.Parameter(torch.zeros(shape))
            self.reset_parameters()

    def prompt_embeds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings of the class prompts [C, T, H] (context rows not yet filled) and their mask [C, T].

        The fixed tokens' embeddings precede every trainable parameter of a frozen token embedding: they are looked
        up once and kept until the classes, the device or the embedding weights change."""
        w = self.backbone.model.text_model.embeddings.token_embedding.weight
        if w.requires_grad:  # the embedding is tuned (e.g. full fine-tuning): look up every step
            return F.embedding(self._ids.to(w.device), w), self._mask.to(w.device)
        key = (w.data_ptr(), w._version, w.dtype)
        if self._token_cache is None or self._token_cache[0] != key:
            with torch.no_grad():
                self._token_cache = (key, F.embedding(self._ids.to(w.device), w), self._mask.to(w.device))
        return self._token_cache[1], self._token_cache[2]

    def encode_prompts(self, ctx: torch.Tensor, token_embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalised text features [..., C, D] of the prompts with context `ctx` (see `insert_context`)."""
        if self._ctx_pos.device != token_embeds.device:  # moved once, not copied to the device at every step
            self._ctx_pos = self._ctx_pos.to(token_embeds.device)
        x = insert_context(token_embeds, ctx, self._ctx_pos)
        lead, (t, h) = x.shape[:-2], x.shape[-2:]
        feats = encode_text_embeds(self.backbone, x.reshape(-1, t, h), mask.expand(*lead, t).reshape(-1, t),
                                   self.cfg.text_chunk)
        return F.normalize(feats, dim=-1).reshape(*lead, -1)

    def text_features(self) -> torch.Tensor:
        return self.encode_prompts(self.ctx, *self.prompt_embeds())

    @torch.no_grad()
    def zero_shot_text_features(self) -> torch.Tensor:
        """Normalised class features [C, D] of the hand-written template(s) with the current (frozen) text encoder,
        through the same forward as the learned prompts (a teacher for KgCoOp and ProGrad)."""
        emb = self.backbone.model.text_model.embeddings.token_embedding
        feats = []
        for t in self.templates:
            tok = self.backbone.tokenize([t.format(c) for c in self.classnames])
            feats.append(F.normalize(encode_text_embeds(self.backbone, emb(tok["input_ids"]), tok["attention_mask"],
                                                        self.cfg.text_chunk), dim=-1))
        return feats[0] if len(feats) == 1 else F.normalize(torch.stack(feats).mean(0), dim=-1)


register_preset("prompt+ln", "prompt", "prompt tuning with the LayerNorms of both encoders tuned together (LayerNorm tuning paper, Table 1 'Normal')", layernorm=True)

"""Small randomly initialised models of each family, built offline and saved as transformers folders (model,
tokenizer, image processor) that `AutoModel`, `AutoTokenizer` and `AutoImageProcessor` load without a network.

Tokenizers: the project's word-level one (`clipfit.tokenizer`) with [start] text [end] for CLIP and MetaCLIP 2, and
text [end] (no start token, as SigLIP's own) for SigLIP; a small Gemma-like BPE for SigLIP 2 NaFlex, whose folders
transformers always loads with SigLIP 2's tokenizer class.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import transformers
from tokenizers import processors

from ..tokenizer import ALPHABET, EOS, build_tokenizer, special_ids
from .base import FAMILIES

MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


def _gemma_like(words: list[str], max_length: int):
    """SigLIP 2's tokenizer class (Gemma's BPE, lowercased, '▁' for spaces, no start token) over a small vocabulary:
    special tokens, single characters, and `words` with and without a leading '▁' as merged tokens; [end] appended.
    transformers loads any siglip2 folder's tokenizer with this class, so the word-level one cannot stand in."""
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])}
    for c in ALPHABET + "▁":
        vocab.setdefault(c, len(vocab))
    merges: list[Any] = []  # (left, right) pairs
    for form in [f"▁{w.lower()}" for w in words] + [w.lower() for w in words]:  # '▁word' first: it wins the merges
        for k in range(2, len(form) + 1):
            if form[:k] not in vocab:
                merges.append((form[:k - 1], form[k - 1]))
                vocab[form[:k]] = len(vocab)
    tok = transformers.Siglip2Tokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A <eos>",
                                                                         special_tokens=[("<eos>", 1)])
    return tok


def _tokenizer(family: str, words: list[str], max_length: int):
    if family == "siglip2":
        return _gemma_like(words, max_length)
    tok = build_tokenizer(words, max_length=max_length)
    if family == "siglip":  # no start token: text [end]
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"$A {EOS}", special_tokens=[(EOS, tok.convert_tokens_to_ids(EOS))])
        tok.bos_token = None
    return tok


def _config(family: str, vocab: int, hidden: int, layers: int, heads: int, image_size: int, patch: int,
            max_length: int, proj: int):
    tower = dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers, num_attention_heads=heads)
    ids: dict[str, int | None] = dict(special_ids())
    if family == "siglip":
        ids["bos_token_id"] = None
    elif family == "siglip2":  # the Gemma-like tokenizer's ids
        ids = {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": None}
    text = dict(tower, vocab_size=vocab, max_position_embeddings=max_length, **ids)
    vision = dict(tower, patch_size=patch)
    if family == "siglip2":
        vision["num_patches"] = (image_size // patch) ** 2
    else:
        vision["image_size"] = image_size
    cls = {"clip": "CLIPConfig", "metaclip_2": "MetaClip2Config", "siglip": "SiglipConfig",
           "siglip2": "Siglip2Config"}[family]
    extra = {"projection_dim": proj} if family in ("clip", "metaclip_2") else {}
    return getattr(transformers, cls)(text_config=text, vision_config=vision, **extra)


def _processor(family: str, image_size: int, patch: int):
    square = {"height": image_size, "width": image_size}
    if family in ("clip", "metaclip_2"):
        return transformers.CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size=square, image_mean=MEAN,
                                               image_std=STD)
    if family == "siglip":
        return transformers.SiglipImageProcessor(size=square, image_mean=MEAN, image_std=STD)
    return transformers.Siglip2ImageProcessor(patch_size=patch, max_num_patches=(image_size // patch) ** 2,
                                              image_mean=MEAN, image_std=STD)


def make_tiny(family: str, out_dir: str | os.PathLike, words: list[str] | None = None, image_size: int = 32,
              patch: int = 8, hidden: int = 32, layers: int = 2, heads: int = 2, proj: int = 32,
              max_length: int | None = None, seed: int = 0) -> str:
    """Save a small random model of `family` (a name of FAMILIES) with its tokenizer and image processor. Text
    length: 16 for CLIP-like families; SigLIP-like ones the released 64 (transformers' zero-shot pipeline pads
    SigLIP prompts to 64 whatever the model)."""
    family = FAMILIES.canonical(family)
    max_length = max_length or (64 if family in ("siglip", "siglip2") else 16)
    words = words or "a photo of the an on in with".split()
    tok = _tokenizer(family, words, max_length)
    cfg = _config(family, len(tok), hidden, layers, heads, image_size, patch, max_length, proj)
    torch.manual_seed(seed)
    model = getattr(transformers, FAMILIES.get(family).model_class)(cfg)
    if family in ("siglip", "siglip2"):  # the SigLIP paper's initial scale 10 and bias -10 (transformers': 1, 0)
        with torch.no_grad():
            model.logit_scale.fill_(2.3)
            model.logit_bias.fill_(-10.0)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    _processor(family, image_size, patch).save_pretrained(out_dir)
    return str(out_dir)


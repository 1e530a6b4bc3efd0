"""A small word-level tokenizer with a character fallback, saved in transformers format.

Used for the project's own small CLIP (whose captions use a closed vocabulary) and for the random test models.
Words in the vocabulary become one token; any other word is spelled out in character pieces, so unseen class
names still get distinct token sequences instead of collapsing onto one unknown token.
"""
from __future__ import annotations

import string
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<|pad|>", "<|unk|>", "<|startoftext|>", "<|endoftext|>"
SPECIALS = [PAD, UNK, BOS, EOS]  # ids 0..3; EOS must not be id 2 (transformers' legacy CLIP pooling rule)
ALPHABET = string.ascii_lowercase + string.digits + "-'/&.,()+"


def build_tokenizer(words: Iterable[str], max_length: int = 16) -> PreTrainedTokenizerFast:
    """Tokenizer whose vocabulary is SPECIALS + sorted `words` + single characters (+ '##' continuations)."""
    vocab: dict[str, int] = {}
    for tok in SPECIALS + sorted({w.lower() for w in words}) + list(ALPHABET) + [f"##{c}" for c in ALPHABET]:
        vocab.setdefault(tok, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token=UNK, max_input_chars_per_word=64))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        model_max_length=max_length,
    )
    return fast


def special_ids() -> dict[str, int]:
    """Token ids a CLIP config built for this tokenizer must carry."""
    return {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}

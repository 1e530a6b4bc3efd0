"""Load a contrastive vision-language model (transformers format) of a supported family, encode prompts and images
as that family does, score them, and name the parameter groups methods tune.

The family (`clipfit.families`: CLIP, MetaCLIP 2, SigLIP and SigLIP 2) is read from the checkpoint's config.json,
never from its name; its adapter declares how the model tokenises, pools, projects, scores and sizes its images,
and which modules make each parameter group. `layernorms` and `ffn_linears` find modules by type (an
FFN is a module with exactly two direct `nn.Linear` children, its second Linear being the FFN's output layer).
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ClipfitError
from .families import Family, ImageSpec, detect_family  # ImageSpec re-exported: data/transforms reads it here
from .hub import ARCHS, ASSETS, EMBEDDED_MODEL, model_source, resolve_model_path  # noqa: F401 (re-exported)


def clip_config(arch: str, vocab_size: int = 49408, max_positions: int = 77):
    """A transformers CLIPConfig for a named architecture (see ARCHS)."""
    from transformers import CLIPConfig

    if arch not in ARCHS:
        raise ClipfitError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    a = ARCHS[arch]
    (th, ti, tl, tn), (vh, vi, vl, vn) = a["text"], a["vision"]
    return CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=th, intermediate_size=ti, num_hidden_layers=tl,
                         num_attention_heads=tn, max_position_embeddings=max_positions),
        vision_config=dict(hidden_size=vh, intermediate_size=vi, num_hidden_layers=vl, num_attention_heads=vn,
                           image_size=a["image"], patch_size=a["patch"]),
        projection_dim=a["proj"],
    )


def layernorms(module: nn.Module) -> list[tuple[str, nn.LayerNorm]]:
    return [(n, m) for n, m in module.named_modules() if isinstance(m, nn.LayerNorm)]


def ffn_linears(module: nn.Module) -> list[tuple[str, nn.Linear, nn.Linear]]:
    """(name, first Linear, second Linear) of every FFN block, in depth order."""
    out = []
    for n, m in module.named_modules():
        lin = [c for c in m.children() if isinstance(c, nn.Linear)]
        if len(lin) == 2 and len(list(m.children())) <= 3:  # fc1, fc2 and at most an activation module
            out.append((n, lin[0], lin[1]))
    return out


def parameter_group(model: nn.Module, group: str) -> list[str]:
    """Names (as in `model.named_parameters()`) of a parameter group, as the model's family declares it.

    Groups: '{text,vision}_layernorm', '{text,vision}_ffn_out_bias' (each encoder layer's second FFN Linear's bias),
    '{text,vision}_ffn_bias' (both FFN Linears' biases), '{text,vision}_bias' (every bias of the tower and its
    projection), '{text,vision}_all' (every parameter of the tower and its projection); 'all' is every parameter.
    """
    return detect_family(model.config).parameter_group(model, group)


class Backbone(nn.Module):
    """A model of a supported family with its tokenizer and image processor; `family` says how to use it."""

    def __init__(self, model: nn.Module, tokenizer, processor, source: str = ""):
        super().__init__()
        self.model: Any = model  # a transformers CLIP-like model: towers and layers are read by attribute
        self.tokenizer = tokenizer
        self.processor = processor
        self.source = source
        self.family: Family = detect_family(model.config)

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, device: str | torch.device = "cpu") -> Backbone:
        """Load model, tokenizer and image processor from a hub id or a local directory (None: the embedded model),
        with the transformers class of the family its config.json names."""
        import transformers
        from transformers import AutoImageProcessor, AutoTokenizer
        from transformers.utils import logging as hf_logging

        path, kwargs = model_source(name_or_path)  # one line in seconds for a missing folder or an unreachable hub
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its load report becomes our one line below
        hf_logging.disable_progress_bar()  # weight-loading bars; clipfit shows its own progress
        try:
            family = detect_family(transformers.PretrainedConfig.get_config_dict(path, **kwargs)[0])
            # attention through torch's scaled_dot_product_attention (fused kernels on GPU), said explicitly: the
            # default of older transformers versions is the eager implementation
            model, info = getattr(transformers, family.model_class).from_pretrained(
                path, ignore_mismatched_sizes=True, output_loading_info=True, attn_implementation="sdpa", **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
            processor = AutoImageProcessor.from_pretrained(path, **kwargs)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            hint = " (offline? pass a local directory)" if isinstance(e, OSError) else ""
            raise ClipfitError(f"cannot load model {path!r}: {first}{hint}") from None
        finally:
            hf_logging.set_verbosity(verbosity)
        mismatched = sorted(info.get("mismatched_keys") or [], key=str)
        if mismatched:
            k, in_file, in_config = mismatched[0]
            raise ClipfitError(f"model {path!r}: its config.json does not fit its weights: {len(mismatched)} weights have "
                               f"other shapes (e.g. {k}: {tuple(in_file)} in the weights, {tuple(in_config)} by the "
                               "config); use the config.json the weights were saved with")
        missing = sorted(info.get("missing_keys") or [])
        if missing:
            raise ClipfitError(f"model {path!r}: its weight files lack {len(missing)} of the model's weights (e.g. "
                               f"{missing[0]}), which would be random; use a complete checkpoint")
        model.eval().to(device)
        return cls(model, tokenizer, processor, source=name_or_path or EMBEDDED_MODEL)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def image_spec(self) -> ImageSpec:
        return self.family.image_spec(self.processor)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids padded as the family was trained (CLIP: to the longest prompt; SigLIP: to the text tower's
        length) and the attention mask of the real tokens (the text tower sees it where the family uses one)."""
        t = self.family.tokenize(self.tokenizer, texts, self.family.max_text_length(self.model))
        return {k: v.to(self.device) for k, v in t.items()}

    def encode_text(self, tokens: dict[str, torch.Tensor], normalize: bool = True) -> torch.Tensor:
        dev = self.device  # tokens made before the model moved (a method built, then moved by `fit`) follow it
        feats = self.family.text_features(self.model, {k: v.to(dev) for k, v in tokens.items()})
        return F.normalize(feats, dim=-1) if normalize else feats

    def encode_image(self, pixel_values: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        feats = self.family.image_features(self.model, pixel_values)
        return F.normalize(feats, dim=-1) if normalize else feats

    def image_pooled(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image feature before the projection (what the LayerNorm tuning paper's linear probe reads); on
        SigLIP the attention-pooling head's output, which is the embedding itself."""
        return self.family.image_pooled(self.model, pixel_values)

    def tower_parameters(self, tower: str) -> list[nn.Parameter]:
        """Every parameter of a tower ('text' or 'vision') and of its projection, as the family declares them."""
        return [p for m in self.family.parts(self.model).tower(tower).modules_with_projection() for p in m.parameters()]

    @property
    def embed_dim(self) -> int:
        """Width of the shared image-text space (the image embedding's size)."""
        return self.family.embed_dim(self.model)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()

    def logits(self, image_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        """The model's own scores [images, texts] of normalised features: exp(logit_scale) * cos, plus the logit
        bias where the family has one (SigLIP); a softmax over classes is unchanged by the bias."""
        return self.family.logits(self.model, image_feats, text_feats)


def checkpoint_family(name_or_path: str | None) -> Family | None:
    """The family of a model from its config.json alone (no weights loaded): a one-line error for a model of a family
    clipfit does not adapt; None when the config cannot be read (the model's own loading then says why)."""
    import transformers

    try:
        path, kwargs = model_source(name_or_path)
        config = transformers.PretrainedConfig.get_config_dict(path, **kwargs)[0]
    except (ClipfitError, OSError, ValueError, KeyError, TypeError):
        return None
    return detect_family(config)


def input_spec(name_or_path: str | None) -> ImageSpec | None:
    """A model's ImageSpec from its config and image processor alone (no weights loaded); None when they cannot be
    read (the model's own loading then says why)."""
    from transformers import AutoImageProcessor

    family = checkpoint_family(name_or_path)
    if family is None:
        return None
    try:
        path, kwargs = model_source(name_or_path)
        return family.image_spec(AutoImageProcessor.from_pretrained(path, **kwargs))
    except (ClipfitError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def make_random_clip(out_dir: str | os.PathLike, words: list[str] | None = None, image_size: int = 32,
                     patch: int = 8, hidden: int = 32, layers: int = 2, heads: int = 2, proj: int = 32,
                     max_length: int = 16, seed: int = 0) -> str:
    """Save a small randomly initialised CLIP (model, tokenizer, image processor) in transformers format."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from .tokenizer import build_tokenizer, special_ids

    words = words or "a photo of the an on in with".split()
    tok = build_tokenizer(words, max_length=max_length)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=max_length,
                         **special_ids()),
        vision_config=dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                           num_attention_heads=heads, image_size=image_size, patch_size=patch),
        projection_dim=proj,
    )
    torch.manual_seed(seed)
    model = CLIPModel(cfg)
    proc = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                              image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25])
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    return str(out_dir)

"""What a method may ask of a contrastive vision-language model, declared once per model family.

A family is chosen from the checkpoint's config (`model_type`), never from its name. Each family names, as module
paths, the parts of a loaded transformers model that methods use: the two towers, the text-embedding insertion
point and the pooled position, the encoder layers (their FFN Linears, attention q/k/v Linears, LayerNorms), the
projections into the shared space and the scoring. `Family.parts(model)` resolves them into module objects.

Every family here is a transformers two-tower model whose encoder layers are built alike (`layer_norm1`,
`self_attn.{q,k,v,out}_proj`, `layer_norm2`, `mlp.fc1`, `mlp.fc2`); the families differ in the tower-level
parts, in tokenisation and pooling, and in scoring.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import nn

from ..errors import ClipfitError
from ..registry import Registry

Model = Any  # a loaded transformers two-tower model; its attributes are the ones the family declares


@dataclass(frozen=True)
class ImageSpec:
    """What images must look like for a model (how data/transforms prepares them)."""

    size: int  # side of the square the model takes
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: int  # with crop: the shortest edge before the centre crop; without: equal to size
    crop: bool = True  # True: resize the shortest edge, centre crop (CLIP); False: resize to size x size (SigLIP)
    resample: str = "bicubic"  # PIL filter name of the family's own image processor


@dataclass(frozen=True)
class TowerParts:
    """One tower of a loaded model, resolved into modules."""

    tower: Any  # the tower module (typed loosely: its submodules are the family's)
    layers: list[Any]  # encoder layers, in depth order
    final_norm: nn.LayerNorm  # text: final LayerNorm before pooling; image: post LayerNorm
    projection: nn.Module | None  # pooled feature -> shared space; None where the pooled feature is the embedding
    pre_norm: nn.LayerNorm | None = None  # LayerNorm on the embeddings before the first layer (CLIP's image tower)
    pooler: nn.Module | None = None  # a learned pooling module (SigLIP's attention-pooling head), else None

    def ffn(self) -> list[tuple[nn.Linear, nn.Linear]]:
        """(first, second) Linear of each layer's MLP; the second's bias is the FFN output bias."""
        return [(layer.mlp.fc1, layer.mlp.fc2) for layer in self.layers]

    def qkv(self) -> list[tuple[nn.Linear, nn.Linear, nn.Linear]]:
        """(q, k, v) Linears of each layer's self-attention."""
        return [(a.q_proj, a.k_proj, a.v_proj) for a in (layer.self_attn for layer in self.layers)]

    def attn_out(self) -> list[nn.Linear]:
        return [layer.self_attn.out_proj for layer in self.layers]

    def layernorms(self) -> list[nn.LayerNorm]:
        """Every LayerNorm of the tower (layers, pre/post/final norms, a pooling head's), in module order."""
        return [m for m in self.tower.modules() if isinstance(m, nn.LayerNorm)]

    def modules_with_projection(self) -> list[nn.Module]:
        """The tower and, when it lives outside the tower, its projection."""
        p = self.projection
        return [self.tower] if p is None or any(m is p for m in self.tower.modules()) else [self.tower, p]


@dataclass(frozen=True)
class Parts:
    """Everything a method may use of a loaded model, as module objects."""

    text: TowerParts
    vision: TowerParts
    token_embedding: nn.Embedding  # the text insertion point: prompts are token embeddings
    position_embedding: nn.Embedding  # added to the token embeddings (prompts keep the text's positions)
    logit_scale: nn.Parameter  # log of the temperature: scores are exp(logit_scale) * cos
    logit_bias: nn.Parameter | None  # added to the scores (SigLIP's sigmoid loss); None for CLIP

    def tower(self, name: str) -> TowerParts:
        if name not in ("text", "vision"):
            raise ClipfitError(f"unknown tower {name!r}; choose text or vision")
        return self.text if name == "text" else self.vision


GROUP_KINDS = ("layernorm", "ffn_out_bias", "ffn_bias", "bias", "all")


class Family:
    """Declarations for one model family; subclasses set the class attributes and override what differs."""

    name: ClassVar[str]  # registry name
    title: ClassVar[str]  # for people: what checkpoints it covers
    model_type: ClassVar[str]  # config.json's model_type that selects the family
    model_class: ClassVar[str]  # the transformers class that loads it (config.json's architectures)
    # module paths on the loaded model
    text_tower: ClassVar[str] = "text_model"
    vision_tower: ClassVar[str] = "vision_model"
    token_embedding: ClassVar[str] = "text_model.embeddings.token_embedding"
    position_embedding: ClassVar[str] = "text_model.embeddings.position_embedding"
    text_layers: ClassVar[str] = "text_model.encoder.layers"
    vision_layers: ClassVar[str] = "vision_model.encoder.layers"
    text_final_norm: ClassVar[str] = "text_model.final_layer_norm"
    vision_final_norm: ClassVar[str] = "vision_model.post_layernorm"
    text_projection: ClassVar[str | None]
    vision_projection: ClassVar[str | None]
    vision_pre_norm: ClassVar[str | None] = None
    vision_pooler: ClassVar[str | None] = None
    logit_bias: ClassVar[str | None] = None
    # text: how prompts are tokenised and pooled
    text_pooling: ClassVar[str]  # "eos": at the end-of-text token; "last": at the last position (padding included)
    text_padding: ClassVar[str]  # "longest" (padding=True) or "max_length" (to the text tower's positions)
    text_mask: ClassVar[bool]  # the tokenizer's attention mask goes to the text tower
    text_causal: ClassVar[bool]  # causal self-attention in the text tower
    # image
    vision_prefix: ClassVar[int]  # tokens before the patch tokens in the image sequence (class token: 1)
    image_pooling: ClassVar[str]  # what the image feature before the projection is
    scoring: ClassVar[str]  # the model's own logits, in words

    # ------------------------------------------------------------------ resolution on a loaded model

    def check(self, config: Any) -> None:
        """Refuse, in one line, a variant of the family that the declarations do not cover."""

    def _get(self, model: Model, path: str) -> Any:
        try:
            return model.get_submodule(path)
        except AttributeError:
            raise ClipfitError(f"{type(model).__name__} has no {path}, which the {self.title} adapter needs; is it a "
                               f"{self.model_class} checkpoint?") from None

    def _opt(self, model: Model, path: str | None) -> Any:
        return None if path is None else self._get(model, path)

    def parts(self, model: Model) -> Parts:
        """The declared parts resolved on `model` (a one-line error when one is missing)."""
        self.check(model.config)
        g = lambda p: self._get(model, p)  # noqa: E731
        text = TowerParts(g(self.text_tower), list(g(self.text_layers)), g(self.text_final_norm),
                          self._opt(model, self.text_projection))
        vision = TowerParts(g(self.vision_tower), list(g(self.vision_layers)), g(self.vision_final_norm),
                            self._opt(model, self.vision_projection), self._opt(model, self.vision_pre_norm),
                            self._opt(model, self.vision_pooler))
        bias = getattr(model, self.logit_bias) if self.logit_bias else None
        return Parts(text, vision, g(self.token_embedding), g(self.position_embedding), model.logit_scale, bias)

    # ------------------------------------------------------------------ text

    def max_text_length(self, model: Model) -> int:
        return int(self._get(model, self.position_embedding).num_embeddings)

    def tokenize(self, tokenizer, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        """Token ids padded as the model was trained to read them, and the attention mask of the real tokens (what
        the text tower is given of it: `text_inputs`)."""
        if self.text_padding == "max_length":
            t = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, padding_side="right",
                          return_attention_mask=True, return_tensors="pt")
        else:
            t = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_attention_mask=True,
                          return_tensors="pt")
        return {"input_ids": t["input_ids"], "attention_mask": t["attention_mask"]}

    def text_inputs(self, tokens: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The text tower's keyword arguments for `tokenize`'s output: the mask only where the family uses one
        (SigLIP was trained attending to its padding)."""
        return {k: v for k, v in tokens.items() if k == "input_ids" or (k == "attention_mask" and self.text_mask)}

    def tokenizer_as_trained(self, tokenizer) -> None:
        """Make `tokenizer`, and the folder it is saved to, read text as `tokenize` gives it to the text tower, so
        that other tools (transformers' zero-shot pipeline) get the same ids: padding on the right for the families
        padded to the full length, no attention mask for those whose tower takes none."""
        kwargs: dict[str, Any] = {}
        if self.text_padding == "max_length":
            kwargs["padding_side"] = "right"
        if not self.text_mask:
            kwargs["model_input_names"] = ["input_ids"]
        for k, v in kwargs.items():
            setattr(tokenizer, k, v)
        tokenizer.init_kwargs.update(kwargs)  # what save_pretrained writes

    @staticmethod
    def text_start(tokenizer) -> int:
        """Position of the first text token: the number of special tokens the tokenizer puts before the text
        (CLIP's start token: 1; none: 0). Prompt methods insert their context vectors here."""
        with_specials = tokenizer("a")["input_ids"]
        bare = tokenizer("a", add_special_tokens=False)["input_ids"]
        for i in range(len(with_specials) - len(bare) + 1):
            if with_specials[i:i + len(bare)] == bare:
                return i
        raise ClipfitError("the tokenizer changes a word's tokens when it adds its special tokens; cannot tell where "
                           "the text starts")

    def pooled_index(self, model: Model, input_ids: torch.Tensor) -> torch.Tensor:
        """[B] position of each sequence whose final hidden state the text tower pools."""
        raise NotImplementedError

    def _text_attention_mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """The additive [B, 1, T, T] mask of the text tower's self-attention (None: every token sees every token)."""
        b, t = hidden.shape[:2]
        keep = torch.ones(b, 1, t, t, dtype=torch.bool, device=hidden.device)
        if self.text_causal:
            keep = keep & torch.ones(t, t, dtype=torch.bool, device=hidden.device).tril()
        if attention_mask is not None:
            keep = keep & attention_mask.to(hidden.device).bool()[:, None, None, :]
        elif not self.text_causal:
            return None
        return torch.zeros(keep.shape, dtype=hidden.dtype, device=hidden.device).masked_fill(
            ~keep, torch.finfo(hidden.dtype).min)

    def encode_text_embeds(self, model: Model, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None,
                           pooled_index: torch.Tensor) -> torch.Tensor:
        """Projected, unnormalised text features from token embeddings [B, T, H] (the insertion point): position
        embeddings, the encoder, the final LayerNorm, the hidden state at `pooled_index`, the projection. The same
        steps as the model's own text tower, so token embeddings of real ids give `get_text_features`."""
        p = self.parts(model)
        t = inputs_embeds.shape[1]
        if t > p.position_embedding.num_embeddings:
            raise ClipfitError(f"prompt of {t} tokens is longer than the text encoder's "
                               f"{p.position_embedding.num_embeddings} positions")
        hidden = inputs_embeds + p.position_embedding(torch.arange(t, device=inputs_embeds.device))[None]
        mask = self._text_attention_mask(hidden, attention_mask if self.text_mask else None)
        hidden = p.text.tower.encoder(inputs_embeds=hidden, attention_mask=mask).last_hidden_state
        hidden = p.text.final_norm(hidden)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), pooled_index.to(hidden.device)]
        return pooled if p.text.projection is None else p.text.projection(pooled)

    def text_features(self, model: Model, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Projected, unnormalised text features, by the model's own `get_text_features`."""
        out = model.get_text_features(**self.text_inputs(tokens))
        return out.pooler_output if hasattr(out, "pooler_output") else out

    # ------------------------------------------------------------------ image

    def vision_inputs(self, model: Model, pixel_values: torch.Tensor) -> dict[str, Any]:
        """Keyword arguments of the image tower for a batch of square images [B, 3, S, S]."""
        return {"pixel_values": pixel_values}

    def image_pooled(self, model: Model, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image feature before the projection (what a linear probe reads)."""
        return self._get(model, self.vision_tower)(**self.vision_inputs(model, pixel_values)).pooler_output

    def image_features(self, model: Model, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected, unnormalised image features, by the model's own `get_image_features`."""
        out = model.get_image_features(**self.vision_inputs(model, pixel_values))
        return out.pooler_output if hasattr(out, "pooler_output") else out

    def embed_dim(self, model: Model) -> int:
        """Width of the shared space: the image projection's output, or the pooled feature's where there is none."""
        projection = self.parts(model).vision.projection
        return int(projection.out_features if projection is not None else model.config.vision_config.hidden_size)

    # ------------------------------------------------------------------ scoring

    def logits(self, model: Model, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """The model's own image-text scores [images, texts] from L2-normalised embeddings: exp(logit_scale) * cos,
        plus the logit bias where the family has one. Classification takes a softmax over the classes' scores."""
        scores = model.logit_scale.exp() * image_embeds @ text_embeds.t()
        return scores + model.logit_bias if self.logit_bias else scores

    # ------------------------------------------------------------------ images in, parameter groups

    def image_spec(self, processor: Any) -> ImageSpec:
        raise NotImplementedError

    def parameter_group(self, model: Model, group: str) -> list[str]:
        """Names (as in `model.named_parameters()`) of a parameter group: 'all', or '{text,vision}_KIND' with KIND
        layernorm (every LayerNorm of the tower), ffn_out_bias (each layer's second FFN Linear's bias), ffn_bias
        (both FFN Linears' biases), bias (every bias of the tower and its projection), all (tower + projection)."""
        if group == "all":
            return [n for n, _ in model.named_parameters()]
        tower, _, kind = group.partition("_")
        if tower not in ("text", "vision") or kind not in GROUP_KINDS:
            raise ClipfitError(f"unknown parameter group {group!r}; choose all or "
                               f"{{text,vision}}_{{{','.join(GROUP_KINDS)}}}")
        tp = self.parts(model).tower(tower)
        if kind == "layernorm":
            params = [q for m in tp.layernorms() for q in m.parameters()]
        elif kind == "ffn_out_bias":
            params = [fc2.bias for _, fc2 in tp.ffn()]
        elif kind == "ffn_bias":
            params = [b for fc1, fc2 in tp.ffn() for b in (fc1.bias, fc2.bias)]
        else:
            named = [(n, q) for m in tp.modules_with_projection() for n, q in m.named_parameters()]
            params = [q for n, q in named if kind == "all" or n.rsplit(".", 1)[-1].endswith("bias")]
        ids = {id(q) for q in params if q is not None}
        return [n for n, q in model.named_parameters() if id(q) in ids]

    def count(self, model: Model, group: str) -> int:
        """Number of parameters in a group."""
        names = set(self.parameter_group(model, group))
        return sum(q.numel() for n, q in model.named_parameters() if n in names)


FAMILIES: Registry[Family] = Registry("model family")


def register_family(cls: type[Family]) -> type[Family]:
    FAMILIES.add(cls.name, cls())
    return cls


def config_field(config: Any, key: str) -> Any:
    return config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)


def supported() -> str:
    """The supported families, in words, for messages."""
    return "; ".join(f"{f.title} (model_type {f.model_type!r}, {f.model_class})" for f in map(FAMILIES.get,
                                                                                                FAMILIES.list()))


def detect_family(config: Any) -> Family:
    """The family of a checkpoint from its config (a transformers config or config.json's dict), by `model_type`;
    a one-line error naming the supported families otherwise. The family's own check refuses variants it does not
    cover (SigLIP without its pooling head, ...)."""
    model_type = config_field(config, "model_type")
    for name in FAMILIES.list():
        family = FAMILIES.get(name)
        if family.model_type == model_type:
            family.check(config)
            return family
    archs = config_field(config, "architectures") or []
    what = f"model_type {model_type!r}" + (f" ({', '.join(archs)})" if archs else "")
    raise ClipfitError(f"{what} is not a model family clipfit adapts; supported: {supported()}")


def square_side(n: int, what: str) -> int:
    """The side of an n-patch square grid; a one-line error when n is no square."""
    side = math.isqrt(n)
    if side * side != n:
        raise ClipfitError(f"{what} is {n}, not a square number of patches: clipfit feeds square images only")
    return side


def size_of(processor: Any, *keys: str, attrs: tuple[str, ...] = ("crop_size", "size")) -> int:
    """The first of `keys` set in the processor's `attrs` (dicts or transformers' SizeDicts), in that order."""
    for attr in attrs:
        obj = getattr(processor, attr, None)
        for k in keys:
            v = obj.get(k) if isinstance(obj, Mapping) else getattr(obj, k, None)
            if v:
                return int(v)
    raise ClipfitError(f"the image processor ({type(processor).__name__}) gives no image size ({', '.join(keys)})")


def resample_name(processor: Any) -> str:
    r = getattr(processor, "resample", None)
    return Image.Resampling(int(r)).name.lower() if r is not None else "bicubic"

"""Convert an OpenCLIP checkpoint of a plain CLIP ViT (most LAION, DFN and MetaCLIP ones) into a transformers
folder (weights, config, tokenizer, image processor) that clipfit and transformers load, without open_clip.

OpenCLIP's layout (its `CLIP` class): `visual.conv1` (patch embedding, no bias), `visual.class_embedding`,
`visual.positional_embedding` [1 + grid^2, width], `visual.ln_pre`, `visual.transformer.resblocks.N.{ln_1,
attn.in_proj_weight (q, k, v stacked), attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}`,
`visual.ln_post`, `visual.proj` [width, embed]; `token_embedding`, `positional_embedding` [context, width],
`transformer.resblocks.N` (as above), `ln_final`, `text_projection` [width, embed], `logit_scale` (a scalar).

What the weights do not say is asked for or follows OpenCLIP's rules: the activation (QuickGELU for OpenAI's,
MetaCLIP's and DFN's weights and the `-quickgelu` model names, GELU otherwise) must be given; the number of heads is
width / 64 (OpenCLIP's default head width) except for the ViT-H, ViT-g and ViT-bigG image towers (widths 1280,
1408, 1664), whose configs set 16 heads; both can be overridden. Pooling is the class token (images) and the
end-of-text token (text), as in every plain CLIP config. The tokenizer comes from a folder the user gives. When its
end-of-text token is its largest id (CLIP's BPE), the folder is a CLIPModel; otherwise (MetaCLIP 2's XLM-V, whose
OpenCLIP config pools at eos id 2) a MetaClip2Model, whose text tower pools at the first end-of-text id.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers.utils import logging as hf_logging

from .errors import ClipfitError
from .io import os_error

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
ACTIVATIONS = ("quick_gelu", "gelu")
HEAD_WIDTH = 64
WIDE_IMAGE_HEADS = {1280: 16, 1408: 16, 1664: 16}  # OpenCLIP ViT-H-14 (head width 80), ViT-g-14 (88), ViT-bigG-14 (104)
IGNORED = {"attn_mask", "input_resolution", "context_length", "vocab_size"}  # buffers and ints of OpenAI's archives
FOREIGN = [  # (key pattern, what it shows), checked in order
    (r"visual\.trunk\.", "a timm image tower (visual.trunk.*)"),
    (r"visual\.layer\d\.", "a ModifiedResNet image tower (visual.layer1.*: OpenCLIP's RN50/RN101 family)"),
    (r"text\.transformer\.(embeddings|encoder)\.", "a Hugging Face text tower (text.transformer.*)"),
    (r"text\.", "a custom text tower (text.*)"),
    (r"text_decoder\.", "a captioning decoder (text_decoder.*: CoCa)"),
    (r"visual\.attn_pool\.", "an attentional pooler (visual.attn_pool.*)"),
    (r"logit_bias$", "a logit bias (a sigmoid-loss model; convert SigLIP from its transformers release instead)"),
]
REQUIRED = ["visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding", "visual.proj",
            "token_embedding.weight", "positional_embedding", "text_projection", "logit_scale"]
BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj", "mlp.c_fc": "mlp.fc1",
         "mlp.c_proj": "mlp.fc2"}


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors, .bin or .pt file (loaded with weights_only), unwrapped from an OpenCLIP
    training checkpoint ({"state_dict": {"module.<key>": ...}})."""
    path = Path(path)
    if not path.is_file():
        raise ClipfitError(f"checkpoint not found: {path}")
    sd: Any
    try:
        if path.suffix == ".safetensors":
            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt file or a pickle with more than tensors: one line, whatever the reader raised
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ClipfitError(f"cannot read checkpoint {path}: {first}") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd:
        raise ClipfitError(f"checkpoint {path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def _refuse_foreign(sd: dict[str, torch.Tensor], path: str) -> None:
    for pattern, what in FOREIGN:
        hit = next((k for k in sd if re.match(pattern, k)), None)
        if hit is not None:
            raise ClipfitError(f"{path}: not a plain CLIP ViT: found {what}, e.g. {hit}; only OpenCLIP's plain ViT "
                               "CLIP layout converts")
    missing = [k for k in REQUIRED if k not in sd]
    if missing:
        raise ClipfitError(f"{path}: not a plain CLIP ViT: it has no {missing[0]}; only OpenCLIP's plain ViT CLIP "
                           "layout converts")


def _layers(sd: dict[str, torch.Tensor], prefix: str) -> int:
    found = {int(m[1]) for k in sd if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    if not found or found != set(range(len(found))):
        raise ClipfitError(f"the checkpoint's {prefix}N blocks are not numbered 0..N-1 (found {sorted(found)[:5]})")
    return len(found)


def _heads(width: int, override: int | None, tower: str, wide: dict[int, int]) -> int:
    """The given number of heads, else OpenCLIP's for that width (width / 64, or the wide towers' 16)."""
    heads = override or wide.get(width) or (width // HEAD_WIDTH if width % HEAD_WIDTH == 0 else 0)
    if heads < 1 or width % heads:
        rule = f"{override} heads do not divide it" if override else f"not a multiple of OpenCLIP's head width {HEAD_WIDTH}"
        raise ClipfitError(f"the {tower} tower is {width} wide, {rule}: give its number of heads from the OpenCLIP "
                           f"model config ({tower}_heads)")
    return heads


def _tower(sd: dict[str, torch.Tensor], src: str, dst: str, n: int, out: dict[str, torch.Tensor]) -> None:
    """Map the n residual blocks under `src` to transformers' encoder layers under `dst` (into `out`)."""
    for i in range(n):
        s, d = f"{src}{i}.", f"{dst}{i}."
        for kind in ("weight", "bias"):
            for part, t in zip("qkv", sd.pop(f"{s}attn.in_proj_{kind}").chunk(3)):
                out[f"{d}self_attn.{part}_proj.{kind}"] = t
            for old, new in BLOCK.items():
                out[f"{d}{new}.{kind}"] = sd.pop(f"{s}{old}.{kind}")


def map_state_dict(sd: dict[str, torch.Tensor], path: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict]:
    """(transformers CLIP weights, shapes read from the checkpoint) of an OpenCLIP plain CLIP ViT state dict; a
    one-line error for another architecture or a key the mapping does not place."""
    _refuse_foreign(sd, path)
    sd = {k: v for k, v in sd.items() if k not in IGNORED}
    n_vision, n_text = _layers(sd, "visual.transformer.resblocks."), _layers(sd, "transformer.resblocks.")
    conv, tok = sd["visual.conv1.weight"], sd["token_embedding.weight"]
    grid = math.isqrt(sd["visual.positional_embedding"].shape[0] - 1)
    if grid * grid + 1 != sd["visual.positional_embedding"].shape[0]:
        raise ClipfitError(f"{path}: visual.positional_embedding has {sd['visual.positional_embedding'].shape[0]} "
                           "rows, not 1 + a square grid of patches")
    text_proj = sd.pop("text_projection")
    shapes = dict(vision_width=conv.shape[0], patch=conv.shape[-1], image_size=grid * conv.shape[-1],
                  vision_layers=n_vision, vision_mlp=sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                  text_width=tok.shape[1], vocab_size=tok.shape[0], context_length=sd["positional_embedding"].shape[0],
                  text_layers=n_text, text_mlp=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                  embed_dim=text_proj.shape[1])
    out = {"vision_model.embeddings.patch_embedding.weight": sd.pop("visual.conv1.weight"),
           "vision_model.embeddings.class_embedding": sd.pop("visual.class_embedding"),
           "vision_model.embeddings.position_embedding.weight": sd.pop("visual.positional_embedding"),
           "visual_projection.weight": sd.pop("visual.proj").t(),
           "text_model.embeddings.token_embedding.weight": sd.pop("token_embedding.weight"),
           "text_model.embeddings.position_embedding.weight": sd.pop("positional_embedding"),
           "text_projection.weight": text_proj.t(),
           "logit_scale": sd.pop("logit_scale").reshape(())}
    for kind in ("weight", "bias"):
        for old, new in (("visual.ln_pre", "vision_model.pre_layrnorm"), ("visual.ln_post", "vision_model.post_layernorm"),
                         ("ln_final", "text_model.final_layer_norm")):
            if f"{old}.{kind}" not in sd:
                raise ClipfitError(f"{path}: not a plain CLIP ViT: it has no {old}.{kind}")
            out[f"{new}.{kind}"] = sd.pop(f"{old}.{kind}")
    try:
        _tower(sd, "visual.transformer.resblocks.", "vision_model.encoder.layers.", n_vision, out)
        _tower(sd, "transformer.resblocks.", "text_model.encoder.layers.", n_text, out)
    except KeyError as e:
        raise ClipfitError(f"{path}: not a plain CLIP ViT: a residual block lacks {e.args[0]}") from None
    if sd:
        extra = sorted(sd)
        raise ClipfitError(f"{path}: not a plain CLIP ViT: {len(extra)} weights this conversion has no place for "
                           f"(e.g. {extra[0]}: layer scale, extra norms or heads of another OpenCLIP config)")
    if out["visual_projection.weight"].shape[0] != shapes["embed_dim"]:
        raise ClipfitError(f"{path}: visual.proj and text_projection map to different widths "
                           f"({out['visual_projection.weight'].shape[0]} vs {shapes['embed_dim']})")
    return {k: v.contiguous().clone() for k, v in out.items()}, shapes


def load_tokenizer(path: str | os.PathLike | None):
    """A transformers tokenizer from a folder: a saved transformers tokenizer (tokenizer.json or
    tokenizer_config.json) or CLIP's BPE files (vocab.json and merges.txt)."""
    if path is None:
        raise ClipfitError("an OpenCLIP checkpoint carries no tokenizer: give a folder with CLIP's BPE tokenizer "
                           "(vocab.json and merges.txt, or a saved transformers tokenizer such as the one of "
                           "openai/clip-vit-base-patch32) for the model's vocabulary")
    p = Path(path)
    try:
        if (p / "tokenizer.json").is_file() or (p / "tokenizer_config.json").is_file():
            return transformers.AutoTokenizer.from_pretrained(str(p))
        if (p / "vocab.json").is_file() and (p / "merges.txt").is_file():
            return transformers.CLIPTokenizer.from_pretrained(str(p))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ClipfitError(f"cannot load the tokenizer in {p}: {(str(e).strip().splitlines() or [''])[0]}") from None
    raise ClipfitError(f"tokenizer folder {p} has neither tokenizer.json / tokenizer_config.json nor CLIP's "
                       "vocab.json and merges.txt")


def _config(shapes: dict, tokenizer, activation: str, vision_heads: int | None, text_heads: int | None):
    """(transformers config, class name) for the mapped weights and the tokenizer."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ClipfitError("the tokenizer has no end-of-text token, where the text tower pools")
    if len(tokenizer) > shapes["vocab_size"]:
        raise ClipfitError(f"the tokenizer has {len(tokenizer)} tokens, the checkpoint's token embedding "
                           f"{shapes['vocab_size']}: give the tokenizer the model was trained with")
    # argmax pooling (OpenCLIP's default) = first end-of-text when that is the largest id; else the model pooled at
    # the end-of-text id (OpenCLIP's pool_type 'eos'), which MetaClip2Model does for any id
    cls = "CLIPModel" if eos == len(tokenizer) - 1 and eos != 2 else "MetaClip2Model"
    ids = dict(eos_token_id=eos, bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id)
    text = dict(vocab_size=shapes["vocab_size"], hidden_size=shapes["text_width"], intermediate_size=shapes["text_mlp"],
                num_hidden_layers=shapes["text_layers"], max_position_embeddings=shapes["context_length"],
                num_attention_heads=_heads(shapes["text_width"], text_heads, "text", {}), hidden_act=activation,
                layer_norm_eps=1e-5, **ids)
    vision = dict(hidden_size=shapes["vision_width"], intermediate_size=shapes["vision_mlp"],
                  num_hidden_layers=shapes["vision_layers"], image_size=shapes["image_size"],
                  patch_size=shapes["patch"], hidden_act=activation, layer_norm_eps=1e-5,
                  num_attention_heads=_heads(shapes["vision_width"], vision_heads, "vision", WIDE_IMAGE_HEADS))
    config = getattr(transformers, cls.replace("Model", "Config"))(text_config=text, vision_config=vision,
                                                                  projection_dim=shapes["embed_dim"])
    config.architectures = [cls]
    return config, cls


def _check_fits(config, cls: str, weights: dict[str, torch.Tensor]) -> None:
    """The mapped weights are exactly the model's (names and shapes), checked on a model without memory."""
    with torch.device("meta"):
        model = getattr(transformers, cls)(config)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if want != got:
        k = sorted(set(want) ^ set(got) or {k for k in want if want[k] != got[k]})[0]
        raise ClipfitError(f"internal: the converted weights do not fit {cls} at {k} ({got.get(k)} vs {want.get(k)})")


def convert_openclip(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, *, activation: str,
                     tokenizer: str | os.PathLike | None = None, mean: tuple[float, float, float] = OPENAI_MEAN,
                     std: tuple[float, float, float] = OPENAI_STD, vision_heads: int | None = None,
                     text_heads: int | None = None) -> str:
    """Write the transformers folder of an OpenCLIP plain CLIP ViT checkpoint to `out_dir` (new, or an empty folder:
    nothing is replaced). `activation`: quick_gelu or gelu, as the OpenCLIP model config says (not in the weights).
    `mean`/`std`: the image normalisation (OpenAI CLIP's by default). Returns the folder."""
    if activation not in ACTIVATIONS:
        raise ClipfitError(f"activation {activation!r}: choose quick_gelu (OpenAI, MetaCLIP, DFN weights, OpenCLIP "
                           "model names ending in -quickgelu) or gelu (other OpenCLIP configs)")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ClipfitError(f"{out} exists and is not an empty folder; choose a new folder for the converted model")
    above = next((p for p in out.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise ClipfitError(f"{out}: {above} is a file, not a folder; choose a new folder for the converted model")
    tok = load_tokenizer(tokenizer)
    weights, shapes = map_state_dict(load_state_dict(checkpoint), str(checkpoint))
    config, cls = _config(shapes, tok, activation, vision_heads, text_heads)
    _check_fits(config, cls, weights)
    tok.model_max_length = shapes["context_length"]
    side = {"height": shapes["image_size"], "width": shapes["image_size"]}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # not its note that it falls back to its PIL backend without torchvision
    try:  # saved as CLIPImageProcessor either way
        processor = transformers.CLIPImageProcessor(size={"shortest_edge": shapes["image_size"]}, crop_size=side,
                                       image_mean=list(mean), image_std=list(std))
    finally:
        hf_logging.set_verbosity(verbosity)
    work = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.partial"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work.mkdir()
    except OSError as e:
        raise os_error(e, out, "write the converted model to") from None
    try:  # written beside the target, then renamed: a failure leaves no half-written folder
        save_file(weights, str(work / "model.safetensors"), metadata={"format": "pt"})
        config.save_pretrained(work)
        tok.save_pretrained(work)
        processor.save_pretrained(work)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.rename(work, out)
    except BaseException as e:
        shutil.rmtree(work, ignore_errors=True)  # only the folder made here
        if isinstance(e, OSError):
            raise os_error(e, out, "write the converted model to") from None
        raise
    return str(out)

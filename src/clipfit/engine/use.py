"""Using a trained run: predict on image files, export a merged transformers checkpoint, count parameters."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..backbone import clip_config
from ..data.images import open_image, to_rgb
from ..data.transforms import eval_transform
from ..errors import ClipfitError
from ..io import write_json
from ..method import METHODS
from .run import LoadedRun, load_run, make_method
from .support import check_supported


def read_classes(spec: str) -> list[str]:
    """Class names from a file (one per line) or a comma-separated list."""
    if os.path.isfile(spec):
        with open(spec, encoding="utf-8") as f:
            names = [ln.strip() for ln in f if ln.strip()]
    else:
        names = [c.strip() for c in spec.split(",") if c.strip()]
    if len(names) < 2:
        raise ClipfitError(f"--classes {spec!r} gives {len(names)} class name(s); give at least 2 (a file or 'a,b,c')")
    return names


def _open_image(image: Any, i: int) -> Image.Image:
    """Image `i` (0-based) to predict as RGB: a file path, a PIL image, or an HxW / HxWxC uint8 numpy array; anything
    else, an empty image or an array of another shape or type is a one-line error naming it."""
    if isinstance(image, (str, os.PathLike)):
        return open_image(image)
    if isinstance(image, Image.Image):
        if 0 in image.size:
            raise ClipfitError(f"image {i + 1} has {image.size[0]}x{image.size[1]} pixels; give an image with pixels")
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        a = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))) or 0 in a.shape:
            raise ClipfitError(f"image {i + 1} is a numpy array of shape {image.shape} and dtype {image.dtype}; give "
                               "an HxW or HxWx3 uint8 array (or a file path or a PIL image)")
        return to_rgb(Image.fromarray(a))
    raise ClipfitError(f"image {i + 1} is a {type(image).__name__}; give a file path, a PIL image or an HxWx3 uint8 "
                       "numpy array")


def _image_name(image: Any, i: int) -> str:
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    return getattr(image, "filename", "") or f"<image {i + 1}>"


@torch.no_grad()
def predict_images(run: LoadedRun, images: Sequence[Any], classes: list[str] | None = None,
                   topk: int = 5) -> list[dict]:
    """Top-k (class, probability) for each image (a path, a PIL image or a uint8 numpy array)."""
    method = run.method
    if classes and classes != method.classnames:
        if not method.class_agnostic:
            raise ClipfitError(f"method {run.config['method']!r} learned weights for its own classes; --classes cannot change them")
        method.set_classes(classes)
    tf = eval_transform(method.backbone.image_spec)
    x = torch.stack([tf(_open_image(im, i)) for i, im in enumerate(images)]).to(run.device)
    probs = method.logits(method.image_features(x), method.text_features()).float().softmax(-1).cpu()
    k = min(topk, len(method.classnames))
    out = []
    for i, (im, row) in enumerate(zip(images, probs)):
        vals, idx = row.topk(k)
        out.append({"image": _image_name(im, i), "top": [{"class": method.classnames[j], "probability": round(float(v), 6)}
                                                        for v, j in zip(vals.tolist(), idx.tolist())]})
    return out


EXPORT_INFO = "clipfit.json"


def export_merged(run_dir: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool = False) -> str:
    """Write the tuned model as a plain transformers checkpoint of its own class (CLIPModel, SiglipModel, ...), with
    its tokenizer and image processor, that knows its classes: config.json's `id2label`, and clipfit.json with the
    class names and the prompt template (pass it as the zero-shot pipeline's `hypothesis_template` to get `clipfit
    predict`'s probabilities; for SigLIP the pipeline's sigmoid of the same scores, see its note). manifest.json lists
    every file with its checksum and marks the folder as a clipfit export: the only folder (besides an empty one)
    `overwrite` replaces. Written beside `out_dir` and moved there when complete, so a failed export never destroys
    an earlier one; `out_dir` may not be, or contain, the source run or its model."""
    from .rundir import RunDir

    out = RunDir(out_dir, kind="export")
    source = RunDir(run_dir)
    source.require_trained()
    protect = [("the source run", run_dir)]
    model = source.read_config().get("model")
    if isinstance(model, str) and os.path.isdir(model):
        protect.append(("the model the run adapted", model))
    out.check_target(overwrite, protect=protect)  # before the model loads
    run = load_run(run_dir, device="cpu")
    run.method.merge_into_backbone()  # refuses a method that cannot be merged; CLIP-LoRA folds s B A into W
    bb, names, templates = run.method.backbone, list(run.method.classnames), list(run.method.templates)
    bb.model.config.id2label = dict(enumerate(names))
    bb.model.config.label2id = {c: i for i, c in enumerate(names)}
    info = {"classnames": names, "templates": templates,
            "hypothesis_template": templates[0] if len(templates) == 1 else None,
            "method": run.config["method"], "model": run.config["model"], "dataset": run.config.get("dataset"),
            "run": str(Path(run_dir).resolve())}
    notes = []
    if len(templates) > 1:
        notes.append("the run averages the features of several templates; the zero-shot pipeline takes one, so its "
                     "probabilities differ from `clipfit predict`")
    if bb.family.logit_bias:
        notes.append("the zero-shot pipeline reports SigLIP's sigmoid of each class's score (scale * cos + bias), "
                     "each on its own; `clipfit predict` the softmax over the classes of the same scores")
    if notes:
        info["note"] = "; ".join(notes)
    bb.family.tokenizer_as_trained(bb.tokenizer)  # the pipeline tokenises as clipfit does (SigLIP: right, no mask)
    with out.transaction(overwrite=overwrite, protect=protect) as work:
        bb.model.save_pretrained(work.path)
        bb.tokenizer.save_pretrained(work.path)
        bb.processor.save_pretrained(work.path)
        write_json(work.path / EXPORT_INFO, info)
        work.record_all()
    return str(out.path)


def count_parameters(method: str, arch: str = "ViT-B/16", num_classes: int = 10,
                     settings: Mapping[str, Any] | None = None, shots: int = 16) -> dict:
    """Trainable parameters of `method` on `arch`, counted on a random initialisation (no download); a method whose
    parameters grow with the training set (Tip-Adapter-F) is counted for `shots` images per class."""
    from transformers import CLIPModel

    from ..backbone import Backbone
    from ..config import TrainConfig, apply_settings
    from ..families.archs import ARCHS as FAMILY_ARCHS
    from ..families.archs import arch_model

    entry = METHODS.get(method)
    mcfg = entry.config()
    apply_settings([mcfg, TrainConfig()], settings or {})
    if arch in FAMILY_ARCHS:  # SigLIP's: the family's model class, which `check_supported` asks of the method
        family, model = arch_model(arch)
        check_supported(method, family)
    else:
        with torch.device("meta"):
            model = CLIPModel(clip_config(arch))
    image_size = model.config.vision_config.image_size

    class _Tok:  # prompts are not needed to count parameters
        pad_token_id = 0
        def __call__(self, texts, **kw):
            n = len(texts)
            return {"input_ids": torch.zeros(n, 1, dtype=torch.long), "attention_mask": torch.ones(n, 1, dtype=torch.long)}

    class _Proc:
        crop_size = {"height": image_size}
        size = {"shortest_edge": image_size}
        image_mean = image_std = [0.5, 0.5, 0.5]

    bb = Backbone(model, _Tok(), _Proc(), source=arch)
    m = make_method(method, bb, [f"class {i}" for i in range(num_classes)], "a photo of a {}.", mcfg)
    m.size_for(num_classes * shots)
    by_group: dict[str, int] = {}
    for n, p in m.trainable().items():
        key = n.split(".")[2] if n.startswith("backbone.model.") else n.split(".")[0]
        by_group[key] = by_group.get(key, 0) + p.numel()
    return {"method": method, "arch": arch, "classes": num_classes, "shots": shots, "trainable": m.num_trainable(),
            "by_part": by_group}

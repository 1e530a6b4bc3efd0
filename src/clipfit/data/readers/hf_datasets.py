"""`hf:NAME_OR_PATH[#key=value,...]`: a Hugging Face `datasets` dataset.

PATH may be a folder written by `save_to_disk` (a DatasetDict or a single Dataset; read with `load_from_disk`);
anything else goes to `load_dataset(NAME_OR_PATH)` (a hub id, which needs the network, or a local folder that
`load_dataset` understands, such as an image folder or CSV files).

Options after '#', comma-separated:
    image=COL     the image column (default: the first column with an `Image` feature)
    label=COL     the label column (default: the first `ClassLabel` column, else a column named label/labels)
    config=NAME   the configuration passed to `load_dataset`
    train=SPLIT, val=SPLIT, test=SPLIT   the splits to use (defaults: train; validation/val/valid/dev; test)
e.g. `hf:/data/beans#image=img,label=y` or `hf:cifar10#image=img,val=test`.

Class names are the ClassLabel names with '_' -> ' ' (string labels: their sorted unique values; integer labels
without names: the numbers). Missing validation: 20% of each training class is held out, by the rule of
`folder.split_class`. Missing test split: an error. A single Dataset (no splits) is split per class like an
image folder (50% train / 20% val / 30% test). Items whose label is negative (unlabelled) are dropped.
Keys are '<split name in the dataset>/<row index>'; images are decoded only when read.
"""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from PIL import Image

from ...errors import ClipfitError
from ..dataset_registry import register_prefix
from ..images import to_rgb
from ..types import Item, Task
from .image_folder import DEFAULT_TEMPLATE, split_class

VAL_NAMES = ("validation", "val", "valid", "dev")
OPTIONS = ("image", "label", "config", "train", "val", "test")


def _datasets():
    try:
        import datasets  # an optional library, loaded when an hf: dataset is read
    except ImportError:
        raise ClipfitError("hf: datasets need the `datasets` package: pip install datasets") from None
    return datasets


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'PATH#k=v,k=v' -> (PATH, {k: v}); unknown keys are an error."""
    path, _, opts = spec.partition("#")
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in opts.split(","))):
        k, eq, v = part.partition("=")
        k, v = k.strip(), v.strip()
        if not eq or not v or k not in OPTIONS:
            raise ClipfitError(f"bad hf: option {part!r}; use hf:NAME_OR_PATH#{'=...,'.join(OPTIONS)}=...")
        out[k] = v
    if not path:
        raise ClipfitError("hf: needs a dataset name or a save_to_disk folder, e.g. hf:/data/my_dataset")
    return path, out


class HFReader:
    """Reads '<split>/<index>' from Hugging Face datasets, decoding one row's image at a time."""

    def __init__(self, splits: dict[str, Any], image_column: str):
        self.splits, self.image_column = splits, image_column

    def __call__(self, key: str) -> Image.Image:
        split, _, idx = key.rpartition("/")
        try:
            value = self.splits[split][int(idx)][self.image_column]
        except (KeyError, ValueError, IndexError):
            raise ClipfitError(f"no image {key!r} in this dataset") from None
        if isinstance(value, dict):  # an undecoded Image feature: {"bytes": ..., "path": ...}
            value = Image.open(io.BytesIO(value["bytes"])) if value.get("bytes") else Image.open(value["path"])
        elif not isinstance(value, Image.Image):
            value = Image.fromarray(np.asarray(value, dtype=np.uint8))
        return to_rgb(value)


def _load(path: str, config: str | None):
    ds = _datasets()
    local = os.path.expanduser(path)
    if os.path.isdir(local) and any(os.path.exists(os.path.join(local, f)) for f in ("dataset_dict.json", "state.json")):
        try:
            return ds.load_from_disk(local)
        except Exception as e:  # noqa: BLE001 - datasets raises many kinds
            raise ClipfitError(f"cannot load the saved dataset {local}: {_first_line(e)}") from None
    if not os.path.exists(local) and path.startswith(("/", ".", "~")):
        raise ClipfitError(f"dataset folder not found: {local}")
    try:
        return ds.load_dataset(local if os.path.exists(local) else path, config)
    except Exception as e:  # noqa: BLE001
        raise ClipfitError(f"cannot load Hugging Face dataset {path!r}: {_first_line(e)} (offline? pass a save_to_disk folder)") from None


def _first_line(e: Exception) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def _pick_split(available: list[str], wanted: str | None, defaults: tuple[str, ...], what: str) -> str | None:
    if wanted:
        if wanted not in available:
            raise ClipfitError(f"the dataset has no split {wanted!r} for {what}; it has {', '.join(available)}")
        return wanted
    return next((s for s in defaults if s in available), None)


def _columns(features: dict, opts: dict[str, str]) -> tuple[str, str]:
    ds = _datasets()
    cols = list(features)
    image = opts.get("image") or next((c for c, f in features.items() if isinstance(f, ds.Image)), None)
    label = opts.get("label") or next((c for c, f in features.items() if isinstance(f, ds.ClassLabel)), None) \
        or next((c for c in ("label", "labels") if c in features), None)
    for what, col in (("image", image), ("label", label)):
        if col is None:
            raise ClipfitError(f"cannot find the {what} column among {', '.join(cols)}; name it with hf:...#{what}=COLUMN")
        if col not in features:
            raise ClipfitError(f"no column {col!r} in the dataset; columns: {', '.join(cols)}")
    return image, label


def read_hf(spec: str) -> Task:
    """Build a Task from `hf:` spec text (without the 'hf:' prefix); see the module docstring."""
    path, opts = parse_spec(spec)
    data = _load(path, opts.get("config"))
    ds = _datasets()
    if isinstance(data, ds.Dataset):
        single, splits = True, {"train": data}
    else:
        single, splits = False, dict(data)
    if not splits:
        raise ClipfitError(f"the dataset {path} has no splits")
    available = list(splits)
    tr = _pick_split(available, opts.get("train"), ("train",), "training")
    va = _pick_split(available, opts.get("val"), VAL_NAMES, "validation")
    te = _pick_split(available, opts.get("test"), ("test",), "test")
    if not single and (tr is None or te is None):
        missing = "train" if tr is None else "test"
        raise ClipfitError(f"the dataset {path} has no {missing} split (it has {', '.join(available)}); "
                           f"name one with hf:...#{missing}=SPLIT")
    first = splits[tr]
    image_col, label_col = _columns(first.features, opts)
    feat = first.features[label_col]
    is_classlabel = isinstance(feat, ds.ClassLabel)

    raw: dict[str, list] = {s: list(splits[s][label_col]) for s in {tr, va, te} if s is not None}
    if is_classlabel:
        classnames = [str(n).replace("_", " ") for n in feat.names]
        to_int = int
    elif all(isinstance(v, str) for vals in raw.values() for v in vals):
        names = sorted({v for vals in raw.values() for v in vals})
        index = {n: i for i, n in enumerate(names)}
        classnames, to_int = [n.replace("_", " ") for n in names], index.__getitem__
    else:
        try:
            n = max(int(v) for vals in raw.values() for v in vals) + 1
        except (TypeError, ValueError):
            raise ClipfitError(f"label column {label_col!r} must hold class labels (ClassLabel, integers or strings)") from None
        classnames, to_int = [str(i) for i in range(n)], int

    def items(split: str, rows: list[int] | None = None) -> list[Item]:
        vals = raw[split]
        out = []
        for i in (range(len(vals)) if rows is None else rows):
            v = vals[i]
            if v is None or (not isinstance(v, str) and int(v) < 0):
                continue
            y = to_int(v)
            out.append(Item(f"{split}/{i}", y, classnames[y]))
        return out

    def by_class(split: str) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for it in items(split):
            groups.setdefault(it.label, []).append(int(it.key.rpartition("/")[2]))
        return groups

    if single:
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for y, rows in sorted(by_class(tr).items()):
            for name, part in zip(parts, split_class(rows, str(y))):
                parts[name].extend(part)
        train, val, test = (items(tr, sorted(parts[s])) for s in ("train", "val", "test"))
    else:
        test = items(te)
        if va is not None:
            train, val = items(tr), items(va)
        else:
            keep, hold = [], []
            for y, rows in sorted(by_class(tr).items()):
                a, b, _ = split_class(rows, str(y), p_test=0.0)
                keep += a
                hold += b
            train, val = items(tr, sorted(keep)), items(tr, sorted(hold))
    if not test:
        raise ClipfitError(f"the test split of {path} has no labelled items")
    reader = HFReader({s: splits[s] for s in raw}, image_col)
    return Task(name=f"hf:{spec}", classnames=classnames, template=DEFAULT_TEMPLATE, train=train, val=val,
                test=test, reader=reader)


@register_prefix("hf")
def _hf(spec: str) -> Task:
    return read_hf(spec)

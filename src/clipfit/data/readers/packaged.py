"""Real images that ship in packages (no --root, no download).

- fashion_mnist: Debian `dataset-fashion-mnist` (idx .gz files under /usr/share/datasets/fashion-mnist, or the
  folder in $CLIPFIT_FASHION_MNIST). 28x28 grayscale, 10 classes. train = the first 50,000 training images,
  val = the last 10,000, test = the official 10,000. Keys 'train/<i>', 'test/<i>' index the original files.
- textile: PyPI `conformal-clip-data`, 2,000 simulated 250x250 textile images in 3 classes (1,000 nominal,
  500 with a local defect, 500 with a global defect). Split per class as an image folder is (folder.split_class).
  Keys '<class folder>/<file>'.
- digits: scikit-learn's `load_digits`, 1,797 8x8 images (values 0..16 scaled to 0..255). Split per class as an
  image folder is. Keys 'all/<i>' index the original array.
"""
from __future__ import annotations

import gzip
import os
from functools import partial
from pathlib import Path

import numpy as np

from ...errors import ClipfitError
from ..dataset_registry import register_dataset
from ..images import ArrayReader, FileReader
from ..types import Item, Task
from .image_folder import list_images, split_class

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
FASHION_VAL = 10_000
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEXTILE_CLASSES = [("nominal", "defect-free textile"), ("local", "textile with a local defect"),
                   ("global", "textile with a global defect")]


class LazyArrays(dict):
    """A dict whose values are computed by `loaders` on first access (so building a Task reads no images)."""

    def __init__(self, loaders: dict):
        super().__init__()
        self.loaders = loaders

    def __missing__(self, key: str) -> np.ndarray:
        if key not in self.loaders:
            raise KeyError(key)
        value = self[key] = self.loaders[key]()
        return value


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (MNIST format; gzipped if the name ends in .gz) as a uint8 array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ClipfitError(f"cannot read {path}: {e}") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ClipfitError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ClipfitError(f"{path} is truncated")
    return arr.reshape(shape)


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get("CLIPFIT_FASHION_MNIST") or FASHION_DIR)


def _fashion_file(d: Path, stem: str) -> Path:
    for p in (d / f"{stem}.gz", d / stem):
        if p.is_file():
            return p
    raise ClipfitError(f"Fashion-MNIST not found under {d}: apt-get install dataset-fashion-mnist "
                       f"(or set CLIPFIT_FASHION_MNIST to a folder holding {stem}.gz)")


@register_dataset("fashion_mnist", needs_root=False, help="Fashion-MNIST from Debian's dataset-fashion-mnist (10 classes, 28x28 grayscale)")
def build_fashion_mnist(root: str | None = None) -> Task:
    d = fashion_mnist_dir()
    files = {f"{split}_{kind}": _fashion_file(d, f"{prefix}-{kind}-idx{n}-ubyte")
             for split, prefix in (("train", "train"), ("test", "t10k")) for kind, n in (("images", 3), ("labels", 1))}
    labels = {s: read_idx(files[f"{s}_labels"]) for s in ("train", "test")}
    for s, y in labels.items():
        if y.ndim != 1 or y.size == 0 or y.max() >= len(FASHION_CLASSES):
            raise ClipfitError(f"{files[f'{s}_labels']} does not hold Fashion-MNIST labels")

    def items(split: str, idx) -> list[Item]:
        return [Item(f"{split}/{i}", int(labels[split][i]), FASHION_CLASSES[labels[split][i]]) for i in idx]

    n = len(labels["train"])
    n_val = min(FASHION_VAL, n // 6)  # 10,000 for the real files
    reader = ArrayReader(LazyArrays({s: partial(read_idx, files[f"{s}_images"]) for s in ("train", "test")}))
    return Task(name="fashion_mnist", classnames=list(FASHION_CLASSES), template="a photo of a {}.",
                train=items("train", range(n - n_val)), val=items("train", range(n - n_val, n)),
                test=items("test", range(len(labels["test"]))), reader=reader)


def _split_per_class(keys_by_label: list[list], classnames: list[str], seeds: list[str], fmt=str) -> dict[str, list[Item]]:
    """folder.split_class on each class's keys (paths or indices; fmt turns one into an Item key)."""
    out: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    for y, keys in enumerate(keys_by_label):
        for split, part in zip(out, split_class(keys, seeds[y])):
            out[split].extend(Item(fmt(k), y, classnames[y]) for k in part)
    return out


@register_dataset("textile", needs_root=False, help="simulated textile images from PyPI conformal-clip-data (3 classes: nominal, local defect, global defect)")
def build_textile(root: str | None = None) -> Task:
    try:
        import conformal_clip_data  # optional packages, loaded when their dataset is read
    except ImportError:
        raise ClipfitError("the textile images need the conformal-clip-data package: pip install conformal-clip-data") from None
    base = Path(conformal_clip_data.textile_simulated_root())
    keys = []
    for folder, _ in TEXTILE_CLASSES:
        ims = list_images(base / folder) if (base / folder).is_dir() else []
        if not ims:
            raise ClipfitError(f"no textile images in {base / folder}; reinstall conformal-clip-data")
        keys.append([p.relative_to(base).as_posix() for p in ims])
    classnames = [name for _, name in TEXTILE_CLASSES]
    splits = _split_per_class(keys, classnames, [f for f, _ in TEXTILE_CLASSES])
    return Task(name="textile", classnames=classnames, template="a photo of a {}.", reader=FileReader(base), **splits)


@register_dataset("digits", needs_root=False, help="scikit-learn's handwritten digits (10 classes, 8x8 grayscale)")
def build_digits(root: str | None = None) -> Task:
    try:
        from sklearn.datasets import load_digits  # (a heavy optional library)
    except ImportError:
        raise ClipfitError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    target = np.asarray(d.target)
    indices = [[int(i) for i in np.flatnonzero(target == y)] for y in range(10)]
    splits = _split_per_class(indices, list(DIGIT_WORDS), DIGIT_WORDS, fmt=lambda i: f"all/{i}")
    return Task(name="digits", classnames=list(DIGIT_WORDS), template="a photo of the digit {}.",
                reader=ArrayReader({"all": images}), **splits)

"""MNIST, CIFAR-10 and CIFAR-100 read from their distributed files under --root.

    root/mnist/train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
               (each plain or .gz, as yann.lecun.com distributes them)
    root/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta   (the "python version")
    root/cifar-100-python/train, test, meta                                          (the "python version")

Splits, as Table 5 of "How to Adapt Your Large-Scale Vision-and-Language Model" (LayerNorm tuning) gives them:
test = the official test set (10,000); validation = 2,000 images held out from the official training set, the
rest is train (MNIST 58,000, CIFAR 48,000). Hold-out rule: the training indices 0..n-1 are shuffled with
`random.Random("clipfit:<dataset name>")` and the first 2,000 are validation (a tenth of n for copies with fewer
than 20,000 training images); both lists are kept in index order. Keys 'train/<i>' and 'test/<i>' index the
original files.

Class names and templates are CLIP's (openai/CLIP data/prompts.md), which the paper's zero-shot baseline uses:
MNIST '0'..'9' with 'a photo of the number: "{}".'; CIFAR the batches' label names ('_' -> ' ') with
'a photo of a {}.'. CIFAR-100 uses the 100 fine labels.

The CIFAR batches are Python pickles. They are read with an unpickler that accepts only what these files hold
(dicts, lists, strings, ints and numpy uint8 arrays: the globals numpy ndarray, numpy dtype and numpy's array
_reconstruct) and refuses any other global, so a tampered file cannot run code.
"""
from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np

from ...errors import ClipfitError
from ..dataset_registry import register_dataset
from ..images import ArrayReader
from ..sources import dataset_folder
from ..types import Item, Task
from .packaged import read_idx

VAL_SIZE = 2_000
MNIST_CLASSES = [str(d) for d in range(10)]
MNIST_TEMPLATE = 'a photo of the number: "{}".'
PHOTO = "a photo of a {}."
CIFAR_SHAPE = (3, 32, 32)


def holdout(n: int, seed_text: str, n_val: int = VAL_SIZE) -> tuple[list[int], list[int]]:
    """(train, val) indices of a training set of n: the rule in the module docstring."""
    n_val = n_val if n >= 10 * n_val else n // 10
    idx = list(range(n))
    random.Random(f"clipfit:{seed_text}").shuffle(idx)
    return sorted(idx[n_val:]), sorted(idx[:n_val])


def _task(name: str, classnames: list[str], template: str, arrays: dict[str, np.ndarray],
          labels: dict[str, np.ndarray]) -> Task:
    def items(split: str, idx) -> list[Item]:
        return [Item(f"{split}/{i}", int(labels[split][i]), classnames[labels[split][i]]) for i in idx]

    train, val = holdout(len(labels["train"]), name)
    return Task(name=name, classnames=classnames, template=template, train=items("train", train),
                val=items("train", val), test=items("test", range(len(labels["test"]))), reader=ArrayReader(arrays))


# ---------------------------------------------------------------------------------------------------------- MNIST


def _idx_file(d: Path, stem: str) -> Path:
    for p in (d / stem, d / f"{stem}.gz"):
        if p.is_file():
            return p
    raise ClipfitError(f"{d / stem} not found (expected MNIST's idx file {stem} or {stem}.gz)")


@register_dataset("mnist", template=MNIST_TEMPLATE, help="MNIST handwritten digits (the idx files; 10 classes)")
def build_mnist(root: str | None) -> Task:
    d = dataset_folder(root, "mnist")
    arrays, labels = {}, {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x_path, y_path = _idx_file(d, f"{prefix}-images-idx3-ubyte"), _idx_file(d, f"{prefix}-labels-idx1-ubyte")
        x, y = read_idx(x_path), read_idx(y_path)
        if x.ndim != 3:
            raise ClipfitError(f"{x_path} holds an array of shape {x.shape}, not images [N, 28, 28]")
        if y.ndim != 1 or len(y) != len(x) or (len(y) and y.max() > 9):
            raise ClipfitError(f"{y_path} does not hold {len(x)} digit labels 0..9 for {x_path.name}")
        arrays[split], labels[split] = x, y
    return _task("mnist", list(MNIST_CLASSES), MNIST_TEMPLATE, arrays, labels)


# ---------------------------------------------------------------------------------------------------------- CIFAR


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as f
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as f
    return f


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR's python batches: the only globals allowed are those of a numpy array."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return _reconstruct() if name == "_reconstruct" else getattr(np, name)


def read_cifar_pickle(path: Path) -> dict[str, object]:
    """One CIFAR python batch (or meta file) as a dict with str keys (the files are Python 2 pickles)."""
    try:
        with open(path, "rb") as f:
            obj = _BatchUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise ClipfitError(f"{path} not found (expected the CIFAR 'python version' files)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, OSError) as e:
        raise ClipfitError(f"{path} is not a CIFAR python batch: {e}") from None
    if not isinstance(obj, dict):
        raise ClipfitError(f"{path} is not a CIFAR python batch: it holds a {type(obj).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _names(meta: dict, key: str, path: Path) -> list[str]:
    names = meta.get(key)
    if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names):
        raise ClipfitError(f"{path} has no list of class names under {key!r}")
    return [(n.decode("latin1") if isinstance(n, bytes) else n).replace("_", " ") for n in names]


def _batches(paths: list[Path], label_key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 32, 32, 3] uint8 and labels [N] from CIFAR python batches."""
    xs, ys = [], []
    for p in paths:
        b = read_cifar_pickle(p)
        x, y = b.get("data"), b.get(label_key)
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != int(np.prod(CIFAR_SHAPE)):
            raise ClipfitError(f"{p} has no 'data' array of uint8 rows of {int(np.prod(CIFAR_SHAPE))} values")
        y = np.asarray(y if isinstance(y, list) else [], dtype=np.int64)
        if len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() >= n_classes)):
            raise ClipfitError(f"{p} has no {label_key!r} list of {len(x)} labels 0..{n_classes - 1}")
        xs.append(x.reshape(-1, *CIFAR_SHAPE).transpose(0, 2, 3, 1))
        ys.append(y)
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def _cifar(name: str, train: list[str], test: str, meta: str, names_key: str, label_key: str, root: str | None) -> Task:
    d = dataset_folder(root, name)
    classnames = _names(read_cifar_pickle(d / meta), names_key, d / meta)
    arrays, labels = {}, {}
    arrays["train"], labels["train"] = _batches([d / f for f in train], label_key, len(classnames))
    arrays["test"], labels["test"] = _batches([d / test], label_key, len(classnames))
    return _task(name, classnames, PHOTO, arrays, labels)


@register_dataset("cifar10", aliases=("cifar-10",), template=PHOTO, help="CIFAR-10 (python batches; 10 classes)")
def build_cifar10(root: str | None) -> Task:
    return _cifar("cifar10", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                  "batches.meta", "label_names", "labels", root)


@register_dataset("cifar100", aliases=("cifar-100",), template=PHOTO, help="CIFAR-100 (python batches; 100 fine classes)")
def build_cifar100(root: str | None) -> Task:
    return _cifar("cifar100", ["train"], "test", "meta", "fine_label_names", "fine_labels", root)

"""The data model every reader produces and every method consumes."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from ..errors import ClipfitError


@dataclass(frozen=True)
class Item:
    """One labelled image. `key` locates it for the task's reader: a path relative to the dataset's image
    directory for file-backed sets, or '<split>/<index>' for array-backed ones. Keys are what a run directory
    records, so a run can be audited and repeated on the very same images."""

    key: str
    label: int
    classname: str


class ImageReader(Protocol):
    def __call__(self, key: str) -> Image.Image: ...


@dataclass
class Task:
    """A classification task: class names, a prompt template, and train/val/test items.

    `groups` maps an item's key to its group (FMoW region, Camelyon17 hospital, iWildCam location) for sets whose
    paper reports per-group metrics; `metrics` names the metrics the dataset's paper reports (engine/metrics.py),
    first the headline one. Both follow the items through `with_splits`, few-shot sampling and class subsets,
    since keys do not change. Episodic sets (Mini-ImageNet, CUB) list every class in `classnames`; each split's
    items carry only that split's classes (`split_labels`)."""

    name: str
    classnames: list[str]
    template: str  # contains '{}' where the class name goes, e.g. "a photo of a {}."
    train: list[Item]
    val: list[Item]
    test: list[Item]
    reader: ImageReader = field(repr=False)
    groups: dict[str, str] | None = field(default=None, repr=False)
    metrics: tuple[str, ...] = ("accuracy",)

    def prompts(self, template: str | None = None) -> list[str]:
        t = template or self.template
        return [t.format(c) for c in self.classnames]

    def with_splits(self, **kw) -> Task:
        return replace(self, **kw)

    def split_labels(self, split: str) -> list[int]:
        """The sorted labels that occur in split 'train', 'val' or 'test' (for episodic sets: that split's classes)."""
        if split not in ("train", "val", "test"):
            raise ClipfitError(f"split must be train, val or test, not {split!r}")
        return sorted({it.label for it in getattr(self, split)})


class FileReader:
    """Reads images from files under `root`; refuses keys that resolve outside it."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if p != self.root and self.root not in p.parents:
            raise ClipfitError(f"path {key!r} points outside the dataset root {self.root}; fix the split file")
        return p

    def __call__(self, key: str) -> Image.Image:
        p = self.path(key)
        try:
            with Image.open(p) as im:
                return im.convert("RGB")
        except FileNotFoundError:
            raise ClipfitError(f"image not found: {p}") from None
        except OSError as e:
            raise ClipfitError(f"cannot read image {p}: {e}") from None


class ArrayReader:
    """Reads images from in-memory arrays: key '<split>/<index>' -> arrays[split][index] (HxW or HxWxC uint8)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def __call__(self, key: str) -> Image.Image:
        split, _, idx = key.partition("/")
        try:
            a = self.arrays[split][int(idx)]
        except (KeyError, ValueError, IndexError):
            raise ClipfitError(f"no image {key!r} in this dataset") from None
        return Image.fromarray(np.asarray(a)).convert("RGB")

"""The data model every reader produces and every method consumes."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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


def check_template(template: object, what: str = "template") -> str:
    """`template` if it is a prompt template: text with exactly one `{}` (where the class name goes) and no other
    replacement field (literal braces are written `{{` and `}}`); else a one-line error naming it (`what`: the
    option or setting it came from)."""
    import string

    if not isinstance(template, str):
        raise ClipfitError(f"{what} {template!r}: expected text with {{}} where the class name goes")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        raise ClipfitError(f"{what} {template!r}: {e}; write {{}} where the class name goes and {{{{ or }}}} for a "
                           "literal brace") from None
    if fields != [("", "", None)]:
        why = ("has no '{}' where the class name goes" if not fields else
               f"has {len(fields)} replacement fields" if len(fields) > 1 else
               f"has '{{{fields[0][0]}{'!' + fields[0][2] if fields[0][2] else ''}{':' + fields[0][1] if fields[0][1] else ''}}}'"
               " instead of '{}'")
        raise ClipfitError(f"{what} {template!r} {why}; write exactly one {{}} where the class name goes ({{{{ and }}}} "
                           "for literal braces)")
    return template


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


# What Pillow raises for a file that is not a readable image (a truncated, damaged or foreign file).
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def to_rgb(im: Image.Image) -> Image.Image:
    """An RGB copy of any image. 16-bit and 32-bit greyscale and float images are scaled to 8 bits first (Pillow's
    own conversion clips them, so a 16-bit PNG would come out white)."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16") or (im.mode == "I" and a.max(initial=0) > 255):
            a = a / 257.0  # 0..65535 -> 0..255
        elif im.mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0  # float images in 0..1
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise ClipfitError(f"cannot convert an image of mode {im.mode} to RGB ({e}); save it as RGB") from None


@contextlib.contextmanager
def reading_image(path: str | os.PathLike) -> Iterator[None]:
    """Pillow's errors while reading the image at `path` as one line naming the file."""
    try:
        yield
    except FileNotFoundError:
        raise ClipfitError(f"image not found: {path}") from None
    except IMAGE_ERRORS as e:
        raise ClipfitError(f"cannot read image {path}: {e}; replace or remove the file") from None


def open_image(path: str | os.PathLike) -> Image.Image:
    """The image file at `path` as RGB; a one-line error naming the file when it is missing or unreadable."""
    with reading_image(path), Image.open(path) as im:
        return to_rgb(im)


class FileReader:
    """Reads images from files under `root`; refuses keys that resolve outside it. `what`: what `root` is to the user
    ("image folder": keys are its files; else a split file lists them), for that one-line error."""

    def __init__(self, root: str | os.PathLike, what: str = "dataset root"):
        self.root = Path(root).resolve()
        self.what = what

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if p != self.root and self.root not in p.parents:
            fix = ("copy the image into the folder" if self.what == "image folder" else "fix the split file")
            raise ClipfitError(f"path {key!r} points outside the {self.what} {self.root}; {fix}")
        return p

    def __call__(self, key: str) -> Image.Image:
        return open_image(self.path(key))

    def check(self, key: str) -> None:
        """Fast check that the file is an image: its header (and, for PNG, every chunk's checksum)."""
        p = self.path(key)
        with reading_image(p), Image.open(p) as im:
            im.verify()


class PreloadedReader:
    """A reader with some images already decoded (the training images `check_images` opened)."""

    def __init__(self, reader: ImageReader, images: dict[str, Image.Image]):
        self.reader, self.images = reader, images

    def __call__(self, key: str) -> Image.Image:
        im = self.images.get(key)
        return im if im is not None else self.reader(key)


def check_images(task: Task, echo=None, test: bool = True, keep_short: int | None = None) -> Task:
    """Open every image of the task before anything trains, so a bad file fails in seconds with its name: training
    and validation images are decoded (the training ones are kept, so they are decoded once; with `keep_short`,
    shrunk to that shorter side: `transforms.cache_side`), test images have their header checked. In-memory
    datasets (no `check` on their reader) are returned unchanged."""
    check = getattr(task.reader, "check", None)
    if check is None:
        return task
    n = len(task.train) + len(task.val) + (len(task.test) if test else 0)
    if echo:
        echo(f"checking {n} images")
    from .transforms import shrink

    decoded = {it.key: shrink(task.reader(it.key), keep_short) for it in task.train}
    for it in task.val:
        task.reader(it.key)
    for it in task.test if test else []:
        check(it.key)
    return task.with_splits(reader=PreloadedReader(task.reader, decoded))


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
        return to_rgb(Image.fromarray(np.asarray(a)))

"""Reading images: any image file or array as RGB with one-line errors naming the file, the readers a Task reads
its images with (files under a root, in-memory arrays), and checking every image of a task before training."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ClipfitError
from .types import ImageReader, Task

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


def shortest_edge_size(w: int, h: int, short: int) -> tuple[int, int]:
    """transformers' (and torchvision's) rule: short edge -> `short`, long edge -> int(short * long / short_in)."""
    if w <= h:
        return short, int(short * h / w)
    return int(short * w / h), short


def shrink(im: Image.Image, short: int | None) -> Image.Image:
    """`im` with its shorter side reduced to `short` (bicubic, aspect kept); unchanged when it is not larger or
    `short` is None. What the decoded-image caches keep: at twice the model's input size, a random resized crop of at
    least a quarter of the image is still drawn from at least the input's resolution."""
    if short is None or min(im.size) <= short:
        return im
    return im.resize(shortest_edge_size(*im.size, short), Image.BICUBIC, reducing_gap=3.0)


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

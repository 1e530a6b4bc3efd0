"""Image transforms: CoOp's training augmentation and CLIP's evaluation preprocessing, in PIL + NumPy.

Train: random resized crop (scale 0.08-1, aspect 3/4-4/3), random horizontal flip, normalise.
Eval: what the model's own image processor does: resize the shortest edge and centre crop (CLIP), or resize to the
square (SigLIP, `ImageSpec.crop` False); then normalise. Both resample with the processor's filter (CLIP: bicubic).
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from ..backbone import ImageSpec
from .images import shortest_edge_size, shrink
from .types import ImageReader, Item

Transform = Callable[[Image.Image], torch.Tensor]


def _to_tensor(im: Image.Image, spec: ImageSpec) -> torch.Tensor:
    a = np.asarray(im, dtype=np.float32) / 255.0
    a = (a - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return torch.from_numpy(a.transpose(2, 0, 1).copy())


def _center_crop(im: Image.Image, size: int) -> Image.Image:
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2  # floor, as transformers' center_crop
    return im.crop((left, top, left + size, top + size))


def _filter(spec: ImageSpec) -> Image.Resampling:
    return Image.Resampling[spec.resample.upper()]


class EvalTransform:
    """Resize the shortest edge and centre crop, or resize to the square; normalise (a class, not a closure:
    data-loader workers started by spawn or forkserver receive it pickled)."""

    def __init__(self, spec: ImageSpec):
        self.spec = spec

    def __call__(self, im: Image.Image) -> torch.Tensor:
        spec = self.spec
        if not spec.crop:
            return _to_tensor(im.resize((spec.size, spec.size), _filter(spec)), spec)
        nw, nh = shortest_edge_size(*im.size, spec.resize)
        im = im.resize((max(spec.size, nw), max(spec.size, nh)), _filter(spec))
        return _to_tensor(_center_crop(im, spec.size), spec)


def eval_transform(spec: ImageSpec) -> Transform:
    return EvalTransform(spec)


def random_resized_crop_box(w: int, h: int, rng: random.Random, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """The crop box (left, top, width, height) torchvision's RandomResizedCrop would draw."""
    area = w * h
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        ar = math.exp(rng.uniform(*log_ratio))
        cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    in_ratio = w / h  # fallback: centre crop at the nearest allowed aspect ratio
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


class TrainTransform:
    """Random resized crop, random flip, normalise; its random numbers come from `rng` (a checkpoint saves it)."""

    def __init__(self, spec: ImageSpec, seed: int = 0, scale: tuple[float, float] = (0.08, 1.0), flip: bool = True):
        self.spec, self.scale, self.flip = spec, scale, flip
        self.rng = random.Random(seed)

    def __call__(self, im: Image.Image) -> torch.Tensor:
        x, y, cw, ch = random_resized_crop_box(*im.size, self.rng, scale=self.scale)
        im = im.resize((self.spec.size, self.spec.size), _filter(self.spec), box=(x, y, x + cw, y + ch))
        if self.flip and self.rng.random() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        return _to_tensor(im, self.spec)


def train_transform(spec: ImageSpec, seed: int = 0, scale: tuple[float, float] = (0.08, 1.0), flip: bool = True) -> TrainTransform:
    return TrainTransform(spec, seed, scale, flip)


def seed_worker(worker_id: int) -> None:
    """`worker_init_fn` of training DataLoaders: each worker process seeds its copy of the augmentation from its
    own seed (drawn from the loader's generator every epoch), so crops differ between workers and epochs."""
    info = torch.utils.data.get_worker_info()
    rng = getattr(getattr(info.dataset, "transform", None), "rng", None)
    if rng is not None:
        rng.seed(info.seed)


def cache_side(spec: ImageSpec) -> int:
    """Shorter side of the images a decoded-image cache keeps: twice the model's input size (not full resolution:
    16-shot ImageNet would take ~8 GB decoded), at least the evaluation resize."""
    return max(2 * spec.size, spec.resize)


class ImageDataset(torch.utils.data.Dataset):
    """Items -> (image tensor, label). cache=True decodes each image once and keeps it (few-shot sets), shrunk to
    a shorter side of `cache_short` pixels when that is given (`cache_side`)."""

    def __init__(self, items: list[Item], reader: ImageReader, transform: Transform, cache: bool = False,
                 cache_short: int | None = None):
        self.items, self.reader, self.transform = items, reader, transform
        self._cache: dict[int, Image.Image] | None = {} if cache else None
        self.cache_short = cache_short

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        it = self.items[i]
        if self._cache is None:
            im = self.reader(it.key)
        else:
            im = self._cache.get(i)
            if im is None:
                im = self._cache[i] = shrink(self.reader(it.key), self.cache_short)
        return self.transform(im), it.label

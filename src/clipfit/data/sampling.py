"""Few-shot sampling and the base/new class split, identical to CoOp's (Dassl's) for the same items and seed.

Dassl seeds Python's `random` with the run seed, then samples the training set with K shots per class and the
validation set with min(K, 4), in that order and from the same stream; classes are visited in order of first
appearance and each draws `random.sample(items_of_class, K)`. A class with fewer than K items is taken whole.
Reproducing that order exactly gives the very images CoOp's runs used for the same split file and seed.
"""
from __future__ import annotations

import math
import random
from collections import defaultdict

from ..errors import ClipfitError
from .types import Item, Task


def _by_label(items: list[Item]) -> dict[int, list[Item]]:
    groups: dict[int, list[Item]] = defaultdict(list)
    for it in items:
        groups[it.label].append(it)
    return groups


def sample_per_class(items: list[Item], shots: int, rng: random.Random, *, strict: bool, what: str) -> list[Item]:
    """Dassl's `generate_fewshot_dataset` for one split (no repeat). strict: error if a class has < shots items."""
    out: list[Item] = []
    for group in _by_label(items).values():
        if len(group) >= shots:
            out.extend(rng.sample(group, shots))
        elif strict:
            raise ClipfitError(
                f"class {group[0].classname!r} has {len(group)} {what} images, fewer than --shots {shots}; ask for fewer shots"
            )
        else:
            out.extend(group)
    return out


def fewshot(task: Task, shots: int, seed: int) -> Task:
    """K shots per class for training and min(K, 4) for validation, drawn as CoOp draws them. shots <= 0: all."""
    if shots <= 0:
        return task
    rng = random.Random(seed)
    try:
        train = sample_per_class(task.train, shots, rng, strict=True, what="training")
    except ClipfitError as e:
        if task.name.startswith("imagefolder:"):
            from .folder import images_needed

            raise ClipfitError(f"{e} (an image folder that clipfit splits keeps half of each class for training: "
                               f"--shots {shots} needs {images_needed(shots)} images per class)") from None
        raise
    val = sample_per_class(task.val, min(shots, 4), rng, strict=False, what="validation") if task.val else []
    return task.with_splits(train=train, val=val)


def subsample_classes(task: Task, which: str = "all") -> Task:
    """CoOp's base/new split: sorted training labels, the first ceil(n/2) are base, the rest new; relabelled 0.."""
    if which == "all":
        return task
    if which not in ("base", "new"):
        raise ClipfitError(f"--subsample must be all, base or new, not {which!r}")
    labels = sorted({it.label for it in (task.train or task.test)})
    m = math.ceil(len(labels) / 2)
    selected = labels[:m] if which == "base" else labels[m:]
    relabel = {y: i for i, y in enumerate(selected)}

    def keep(items: list[Item]) -> list[Item]:
        return [Item(it.key, relabel[it.label], it.classname) for it in items if it.label in relabel]

    classnames = [task.classnames[y] for y in selected]
    return task.with_splits(train=keep(task.train), val=keep(task.val), test=keep(task.test), classnames=classnames)

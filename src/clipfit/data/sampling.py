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
from .readers.image_folder import images_needed
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


def fewshot(task: Task, shots: int, seed: int, val_shots: int | None = None) -> Task:
    """K shots per class for training and `val_shots` (default min(K, 4)) for validation, drawn as CoOp draws them
    (validation after training, from the same stream). shots <= 0: every image."""
    if shots <= 0:
        return task
    rng = random.Random(seed)
    try:
        train = sample_per_class(task.train, shots, rng, strict=True, what="training")
    except ClipfitError as e:
        if task.name.startswith("imagefolder:"):
            raise ClipfitError(f"{e} (an image folder that clipfit splits keeps half of each class for training: "
                               f"--shots {shots} needs {images_needed(shots)} images per class)") from None
        raise
    v = min(shots, 4) if val_shots is None else val_shots
    val = sample_per_class(task.val, v, rng, strict=False, what="validation") if task.val and v > 0 else []
    return task.with_splits(train=train, val=val)


def subsample_classes(task: Task, which: str = "all") -> Task:
    """CoOp's base/new split: sorted training labels, the first ceil(n/2) are base, the rest new; relabelled 0..
    `train`: the classes of the training split (an episodic set's base classes; its val/test classes drop out)."""
    if which == "all":
        return task
    if which not in ("base", "new", "train"):
        raise ClipfitError(f"--subsample must be all, base, new or train, not {which!r}")
    labels = sorted({it.label for it in (task.train or task.test)})
    m = math.ceil(len(labels) / 2)
    return keep_classes(task, labels if which == "train" else labels[:m] if which == "base" else labels[m:])


def keep_classes(task: Task, labels: list[int]) -> Task:
    """The task restricted to `labels` (in that order), relabelled 0..len-1; items of other classes are dropped
    from every split. E.g. an episodic set's base classes: keep_classes(task, task.split_labels("train"))."""
    relabel = {y: i for i, y in enumerate(labels)}

    def keep(items: list[Item]) -> list[Item]:
        return [Item(it.key, relabel[it.label], it.classname) for it in items if it.label in relabel]

    classnames = [task.classnames[y] for y in labels]
    return task.with_splits(train=keep(task.train), val=keep(task.val), test=keep(task.test), classnames=classnames)

"""Few-shot sampling (CoOp/Dassl-identical draws) and the base/new class split."""
from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from clipfit.data.images import ArrayReader
from clipfit.data.sampling import fewshot, subsample_classes
from clipfit.data.types import Item, Task
from clipfit.errors import ClipfitError


def make_task(n_classes: int = 5, n_train: int = 20, n_val: int = 6, n_test: int = 4, seed: int = 0) -> Task:
    rng = random.Random(seed)
    names = [f"class{c}" for c in range(n_classes)]

    def items(split: str, n: int) -> list[Item]:
        out = [Item(f"{split}/{c}_{i}", c, names[c]) for c in range(n_classes) for i in range(n)]
        rng.shuffle(out)  # classes interleaved, first appearance not in label order
        return out

    return Task("toy", names, "a photo of a {}.", items("train", n_train), items("val", n_val), items("test", n_test),
                reader=ArrayReader({}))


def dassl_reference(train: list[Item], val: list[Item], shots: int, seed: int) -> tuple[list[Item], list[Item]]:
    """Dassl's procedure written out: seed the global stream, then train (K) and val (min(K, 4)), classes in
    order of first appearance, random.sample from each class's items."""
    state = random.getstate()
    try:
        random.seed(seed)
        out = []
        for items, k in ((train, shots), (val, min(shots, 4))):
            groups: dict[int, list[Item]] = defaultdict(list)
            for it in items:
                groups[it.label].append(it)
            sampled = []
            for group in groups.values():
                sampled.extend(random.sample(group, k))
            out.append(sampled)
        return out[0], out[1]
    finally:
        random.setstate(state)


@pytest.mark.parametrize("shots", [1, 2, 4, 8, 16])
def test_fewshot_counts(shots: int):
    task = make_task()
    fs = fewshot(task, shots, seed=1)
    assert Counter(it.label for it in fs.train) == {c: shots for c in range(5)}
    assert Counter(it.label for it in fs.val) == {c: min(shots, 4) for c in range(5)}
    assert fs.test == task.test and fs.classnames == task.classnames
    assert len(set(fs.train)) == len(fs.train) and set(fs.train) <= set(task.train)


def test_fewshot_deterministic_and_seed_dependent():
    task = make_task()
    a, b = fewshot(task, 4, seed=1), fewshot(task, 4, seed=1)
    assert a.train == b.train and a.val == b.val
    draws = {tuple(it.key for it in fewshot(task, 4, seed=s).train) for s in (1, 2, 3)}
    assert len(draws) == 3


@pytest.mark.parametrize("shots,seed", [(1, 1), (2, 2), (4, 3), (8, 1), (16, 2)])
def test_fewshot_matches_dassl(shots: int, seed: int):
    task = make_task(n_classes=7, n_train=17, n_val=9, seed=seed)
    train, val = dassl_reference(task.train, task.val, shots, seed)
    fs = fewshot(task, shots, seed)
    assert fs.train == train and fs.val == val


def test_fewshot_too_many_shots_names_class():
    task = make_task(n_train=3)
    with pytest.raises(ClipfitError, match=r"class 'class\d' has 3 training images, fewer than --shots 4"):
        fewshot(task, 4, seed=1)


def test_fewshot_all_and_short_val():
    task = make_task(n_val=2)
    assert fewshot(task, 0, seed=1) is task
    fs = fewshot(task, 8, seed=1)  # val classes with fewer than min(K, 4) items are kept whole
    assert Counter(it.label for it in fs.val) == {c: 2 for c in range(5)}


@pytest.mark.parametrize("n_classes,n_base", [(5, 3), (4, 2), (1, 1), (101, 51)])
def test_subsample_base_new(n_classes: int, n_base: int):
    task = make_task(n_classes=n_classes, n_train=2, n_val=1, n_test=1)
    base, new = subsample_classes(task, "base"), subsample_classes(task, "new")
    assert subsample_classes(task, "all") is task
    assert base.classnames == task.classnames[:n_base] and new.classnames == task.classnames[n_base:]
    for sub, offset in ((base, 0), (new, n_base)):
        for split, orig in ((sub.train, task.train), (sub.val, task.val), (sub.test, task.test)):
            assert sorted({it.label for it in split}) == list(range(len(sub.classnames)))
            assert all(sub.classnames[it.label] == it.classname for it in split)
            assert [it.key for it in split] == [it.key for it in orig if offset <= it.label < offset + len(sub.classnames)]
    with pytest.raises(ClipfitError, match="--subsample"):
        subsample_classes(task, "half")

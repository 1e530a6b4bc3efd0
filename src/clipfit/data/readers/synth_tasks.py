"""The catalogue's tasks on the procedural world (`clipfit.data.synth`), generated on first use in about a second,
no files: class names "red circle", the template "a photo of a {}." and 64/16/50 train/val/test images per class.
  synth        32 shape-colour classes in the pretraining world (no shift)
  synth_shift  the same 32 classes under a domain shift: striped backgrounds (`SHIFTS["stripes"]`)
  synth_conflict, synth_forget
               12 classes for base-to-new where tuning on the base classes can cost the new ones (see below)
  synth_faded  synth_forget's classes with washed-out colours: tuning gains on the base classes, and whether it
               costs the new ones depends on where it learns (the demo's task; see below)
and stand-ins for the papers' datasets: an episodic set (`synth_episodic`), domain-shift targets (`synth_cast`,
`synth_noise16`), and `synth_imagenet`, which is `synth` run under ImageNet's per-dataset recipe rules (`rules_as`:
CLIPFit's 10 epochs, CoOp's and LLU's 50, Tip-Adapter's ImageNet configuration); `clipfit paper run --stand-ins`
puts it where a table has ImageNet, so that the stand-in grid resolves the settings the real grid would.
"""
from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from ..dataset_registry import register_dataset
from ..images import ArrayReader
from ..synth import (
    ATTRIBUTES,
    COLOUR,
    SHAPE,
    SHAPES,
    SHIFTS,
    TEMPLATE,
    VALUES,
    Shift,
    pair_name,
    render,
    sample_attributes,
)
from ..types import Item, Task

SPLIT_SIZES = {"train": 64, "val": 16, "test": 50}  # images per class


def make_task(name: str, pairs: list[tuple[int, int]], shift: Shift | None = None, seed: int = 0,
              sizes: dict[str, int] | None = None,
              loose: dict[int, tuple[int, float] | tuple[int, float, tuple[int, ...]]] | None = None) -> Task:
    """A classification task over shape-colour `pairs` (label = index in `pairs`), images rendered with `shift`.

    Each split draws its own images (other attributes uniform) from a generator seeded by (seed, split).
    `loose` maps a label to (attribute, p) or (attribute, p, values): with probability p an image of that class
    shows a random value of that attribute (SHAPE or COLOUR; any value, or one of `values`) instead of the one its
    name says, so the name's word for it is only the class's usual value (see `synth_conflict`)."""
    sizes = sizes or SPLIT_SIZES
    classnames = [pair_name(s, c) for s, c in pairs]
    arrays: dict[str, np.ndarray] = {}
    splits: dict[str, list[Item]] = {}
    for k, split in enumerate(("train", "val", "test")):
        rng = np.random.default_rng([seed, k])
        n = sizes[split]
        labels = np.tile(np.arange(len(pairs)), n)  # class-interleaved
        attrs = sample_attributes(len(labels), rng, pairs=pairs)
        attrs[:, :2] = np.asarray(pairs, dtype=np.int64)[labels]
        for label, (attribute, p, *values) in (loose or {}).items():
            redraw = (labels == label) & (rng.random(len(labels)) < p)
            choices = np.asarray(values[0] if values else range(len(VALUES[ATTRIBUTES[attribute]])))
            attrs[redraw, attribute] = choices[rng.integers(0, len(choices), int(redraw.sum()))]
        arrays[split] = render(attrs, rng, shift)
        splits[split] = [Item(f"{split}/{i}", int(y), classnames[y]) for i, y in enumerate(labels)]
    return Task(name=name, classnames=classnames, template=TEMPLATE, train=splits["train"], val=splits["val"],
                test=splits["test"], reader=ArrayReader(arrays))


# The 32 classes of `synth` and `synth_shift`, in label order: the checkerboard of shape-colour pairs
# (shape index + colour index even), sorted by shape, so CoOp's base half (the first 16 labels) is circles,
# squares, triangles and diamonds, and the new half crosses, rings, stars and crescents, each in 4 colours.
# Base-to-new therefore asks for transfer to shapes never seen while tuning. 4 of the 32 pairs (purple circle,
# cyan triangle; red cross, pink star) were held out of pretraining.
TASK_PAIRS: list[tuple[int, int]] = [(s, c) for s in range(8) for c in range(8) if (s + c) % 2 == 0]

# `synth_conflict`: a world where adapting to the base classes teaches exactly what the new classes must not learn.
# Every class is named by a colour and a shape, but only one of the two is what the class is. The 6 base classes
# (labels 0-5: red circle, green square, blue triangle, yellow diamond, purple cross, pink ring) are sorted by
# colour: half of their images show another shape than the name says. The 6 new classes (yellow circle, purple
# square, pink triangle, red diamond, green cross, blue ring) are sorted by shape: half of their images show another
# colour. Zero-shot CLIP trusts both words. Tuning on the base classes learns to trust colour words and discount
# shape words -- the opposite of what the new classes need -- unless something holds the model near zero-shot.
CONFLICT_BASE = [(i, i) for i in range(6)]
CONFLICT_NEW = [(j, (j + 3) % 6) for j in range(6)]
CONFLICT_P = 0.5  # probability that an image shows another value of the attribute its class is not sorted by
CONFLICT_LOOSE = {**{i: (SHAPE, CONFLICT_P) for i in range(6)}, **{6 + j: (COLOUR, CONFLICT_P) for j in range(6)}}

# `synth_forget`: the same 12 classes, closer to the papers' datasets, where zero-shot CLIP already gets most base
# classes right and what tuning costs the new classes is drift rather than a lesson the base classes force. The base
# images' other shapes are drawn from the shapes no class is named after (star, crescent), so a base image never
# shows the shape of another base class's name; every image has a random colour cast (`SHIFTS["cast"]`), the part
# of the base task that tuning can still improve. Zero-shot is right on most base images; cross-entropy keeps
# widening the base classes' colour margins, which a shared prompt or shared biases buy by discounting shape words,
# and the new classes (sorted by shape) pay for it unless the tuned text features are held near zero-shot.
FORGET_NAMELESS_SHAPES = tuple(SHAPES.index(s) for s in ("star", "crescent"))
FORGET_LOOSE = {**{i: (SHAPE, CONFLICT_P, FORGET_NAMELESS_SHAPES) for i in range(6)},
                **{6 + j: (COLOUR, CONFLICT_P) for j in range(6)}}

# `synth_faded`: synth_forget's classes and images without the cast, with every image's colours washed out
# (`SHIFTS["faded"]`: saturation 0.35), a shift pretraining never showed. The base classes, told apart by colour, are
# what it hurts: zero-shot misreads many of their colours (about 75% right) while it still reads the new classes'
# shapes. Tuning can learn to read faded colours again, and where it learns that decides what the new classes keep:
# image LayerNorms learn it for every image (re-amplify the colour differences), so it carries to the new images
# and costs them nothing; a context fitted to the base names learns it as "trust the colour words", which costs
# the new classes (sorted by shape) as it does on `synth_forget`.
_TASKS = {
    "synth": dict(pairs=TASK_PAIRS, shift=None, seed=101,
                  help="32 shape-colour classes of clipfit's synthetic world (generated; 64/16/50 per class)"),
    "synth_conflict": dict(pairs=CONFLICT_BASE + CONFLICT_NEW, shift=None, seed=301, loose=CONFLICT_LOOSE,
                           help="12 classes named by colour and shape, the 6 base ones sorted by colour, the 6 new "
                                "ones by shape (half of each class's images show the other attribute at random): "
                                "base-class tuning can forget what the new classes need (generated; 64/16/50 per "
                                "class)"),
    "synth_forget": dict(pairs=CONFLICT_BASE + CONFLICT_NEW, shift=SHIFTS["cast"], seed=301, loose=FORGET_LOOSE,
                         help="synth_conflict's 12 classes, but the base images' other shapes are ones no class is "
                              "named after, under a colour cast: zero-shot gets most base classes right and tuning's "
                              "drift costs the new ones (generated; 64/16/50 per class)"),
    "synth_faded": dict(pairs=CONFLICT_BASE + CONFLICT_NEW, shift=SHIFTS["faded"], seed=301, loose=FORGET_LOOSE,
                        help="synth_forget's 12 classes with washed-out colours (saturation 0.35), no cast: "
                             "zero-shot misreads many base classes' colours, tuning can learn to read them, and a "
                             "prompt fitted to the base names costs the new classes (the demo's task; generated; "
                             "64/16/50 per class)"),
    "synth_shift": dict(pairs=TASK_PAIRS, shift=SHIFTS["stripes"], seed=102,
                        help="the 32 synth classes with striped backgrounds, a shift never seen in pretraining "
                             "(generated; 64/16/50 per class)"),
}


@functools.lru_cache(maxsize=6)
def _cached(name: str) -> Task:
    spec = _TASKS[name]
    return make_task(name, spec["pairs"], spec["shift"], seed=spec["seed"], loose=spec.get("loose"))


def _copy(task: Task) -> Task:
    """A Task whose lists the caller may change without touching the cached one (images are shared)."""
    return replace(task, classnames=list(task.classnames), train=list(task.train), val=list(task.val),
                   test=list(task.test))


def _task_builder(name: str, cached=None):
    """A catalogue builder returning a fresh copy of the cached task `name` (`cached`: its cache, default `_cached`)."""
    def build(root: str | None = None) -> Task:
        return _copy((cached or _cached)(name))

    return build


for _name, _spec in _TASKS.items():
    register_dataset(_name, needs_root=False, help=_spec["help"])(_task_builder(_name))


# An episodic stand-in (the shape of Mini-ImageNet's and CUB's splits): all 64 shape-colour pairs on striped
# backgrounds; the training split holds the 40 base classes (circles to crosses), the validation split the 8 rings,
# the test split the 16 novel classes (stars and crescents). Labels index `classnames` (all 64).
EPISODIC_PAIRS: list[tuple[int, int]] = [(s, c) for s in range(8) for c in range(8)]
EPISODIC_SPLIT_SHAPES = {"train": range(0, 5), "val": range(5, 6), "test": range(6, 8)}


@register_dataset("synth_episodic", needs_root=False,
                  help="episodic stand-in: 64 shape-colour classes, striped; train/val/test hold disjoint classes "
                       "(40 base / 8 / 16 novel; 64/16/50 images per class)")
def build_synth_episodic(root: str | None = None) -> Task:
    task = _copy(_cached_episodic())
    keep = {split: {i for i, (s, _) in enumerate(EPISODIC_PAIRS) if s in shapes}
            for split, shapes in EPISODIC_SPLIT_SHAPES.items()}
    return task.with_splits(**{split: [it for it in getattr(task, split) if it.label in keep[split]]
                               for split in keep})


@functools.lru_cache(maxsize=1)
def _cached_episodic() -> Task:
    return make_task("synth_episodic", EPISODIC_PAIRS, SHIFTS["stripes"], seed=103)


# Domain-shift stand-ins (test only), as ImageNet's variants are for ImageNet: the synth classes rendered under the
# other shifts; `synth_noise16` keeps every other class (16 of 32), as ImageNet-A and -R keep 200 of ImageNet's 1000.
SHIFT_TARGETS = {"synth_cast": ("cast", TASK_PAIRS), "synth_noise16": ("noise", TASK_PAIRS[::2])}


@functools.lru_cache(maxsize=2)
def _cached_target(name: str) -> Task:
    shift, pairs = SHIFT_TARGETS[name]
    return make_task(name, pairs, SHIFTS[shift], seed=104 + list(SHIFT_TARGETS).index(name),
                     sizes={"train": 0, "val": 0, "test": SPLIT_SIZES["test"]})


for _name, (_shift, _pairs) in SHIFT_TARGETS.items():
    register_dataset(_name, needs_root=False, test_only=True,
                     help=f"{len(_pairs)} synth classes under the '{_shift}' shift (test only; a domain-shift "
                          "stand-in)")(_task_builder(_name, _cached_target))


@register_dataset("synth_imagenet", needs_root=False, rules_as="imagenet",
                  help="synth under ImageNet's recipe rules (CLIPFit 10 epochs, CoOp 50): ImageNet's stand-in")
def build_synth_imagenet(root: str | None = None) -> Task:
    return _task_builder("synth")(root).with_splits(name="synth_imagenet")

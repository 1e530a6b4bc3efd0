"""The dataset registry: catalogue names (with aliases) -> Task builders, and the 'prefix:SPEC' readers.

Reader modules register here; `clipfit.data.catalogue` imports the readers and looks names up (so this module
imports no reader, and no reader imports the catalogue)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..registry import Registry
from .types import Task

Builder = Callable[[str | None], Task]  # builder(root) -> Task


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    builder: Builder
    needs_root: bool  # read from --root (CoOp layout); False for sets that ship or are generated
    test_only: bool  # domain-shift targets (ImageNet-V2, ...): no train split
    help: str
    aliases: tuple[str, ...] = ()


DATASETS: Registry[DatasetEntry] = Registry("dataset")
PREFIXES: Registry[Callable[[str], Task]] = Registry("dataset prefix")


def register_dataset(name: str, *, needs_root: bool = True, test_only: bool = False, help: str = "",
                     aliases: tuple[str, ...] = ()):
    """Decorator: register `builder(root) -> Task` under a lower-case catalogue name and its aliases."""

    def deco(fn: Builder) -> Builder:
        entry = DatasetEntry(name.lower(), fn, needs_root, test_only, help or (fn.__doc__ or "").strip(),
                             tuple(a.lower() for a in aliases))
        DATASETS.add(entry.name, entry, entry.aliases)
        return fn

    return deco


def register_prefix(prefix: str):
    """Decorator: register `reader(spec) -> Task` for datasets named '<prefix>:<spec>'."""
    return PREFIXES.register(prefix)


# Named dataset lists (`--datasets coop11`), in the order the papers' tables print them.
COOP11 = ("imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft",
          "sun397", "dtd", "eurosat", "ucf101")
SUITES: dict[str, tuple[str, ...]] = {
    "coop11": COOP11,  # CoOp's 11 datasets (few-shot, base-to-new)
    "coop10": COOP11[1:],  # the cross-dataset targets: CoOp's datasets but ImageNet
    "imagenet_shifts": ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"),  # domain-shift targets
    # the LayerNorm-tuning paper's 10 regime datasets (Sec. 4; its 2 episodic sets are `clipfit episodic`)
    "layernorm10": ("mnist", "eurosat", "cifar10", "cifar100", "oxford_flowers", "dtd", "food101", "fmow",
                    "camelyon17", "iwildcam"),
}

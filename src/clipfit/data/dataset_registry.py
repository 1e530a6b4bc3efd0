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
    template: str | None = None  # the reader's prompt template, known without reading the data
    rules_as: str | None = None  # recipe rules follow this dataset's (a split variant or stand-in of it)


DATASETS: Registry[DatasetEntry] = Registry("dataset")
PREFIXES: Registry[Callable[[str], Task]] = Registry("dataset prefix")


def register_dataset(name: str, *, needs_root: bool = True, test_only: bool = False, help: str = "",
                     aliases: tuple[str, ...] = (), template: str | None = None, rules_as: str | None = None):
    """Decorator: register `builder(root) -> Task` under a lower-case catalogue name and its aliases. `template`: the
    task's template, when known without building it; `rules_as`: the dataset whose per-dataset recipe rules apply
    (another split of it, or a stand-in for it)."""

    def deco(fn: Builder) -> Builder:
        entry = DatasetEntry(name.lower(), fn, needs_root, test_only, help or (fn.__doc__ or "").strip(),
                             tuple(a.lower() for a in aliases), template, rules_as)
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
    # the LayerNorm-tuning paper's 10 regime datasets on its own splits (Sec. 4 and Table 5; its 2 episodic sets are
    # `clipfit episodic`): EuroSAT, Flowers, DTD and Food-101 with the sizes of its Table 5, not CoOp's
    "layernorm10": ("mnist", "eurosat_ln", "cifar10", "cifar100", "oxford_flowers_ln", "dtd_ln", "food101_ln", "fmow",
                    "camelyon17", "iwildcam"),
}

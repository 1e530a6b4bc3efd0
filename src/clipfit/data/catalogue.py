"""The dataset catalogue: names -> Task builders, plus the `imagefolder:PATH` and `hf:NAME_OR_PATH` forms."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ClipfitError
from .types import Task

Builder = Callable[[str | None], Task]  # builder(root) -> Task


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    builder: Builder
    needs_root: bool  # read from --root (CoOp layout); False for sets that ship or are generated
    test_only: bool  # domain-shift targets (ImageNet-V2, ...): no train split
    help: str


DATASETS: dict[str, DatasetEntry] = {}
_PREFIXES: dict[str, Callable[[str], Task]] = {}


def register_dataset(name: str, *, needs_root: bool = True, test_only: bool = False, help: str = ""):
    """Decorator: register `builder(root) -> Task` under a lower-case catalogue name."""

    def deco(fn: Builder) -> Builder:
        DATASETS[name.lower()] = DatasetEntry(name.lower(), fn, needs_root, test_only, help or (fn.__doc__ or "").strip())
        return fn

    return deco


def register_prefix(prefix: str):
    """Decorator: register `reader(spec) -> Task` for datasets named '<prefix>:<spec>'."""

    def deco(fn: Callable[[str], Task]) -> Callable[[str], Task]:
        _PREFIXES[prefix] = fn
        return fn

    return deco


def _ensure_loaded() -> None:
    # Importing the reader modules registers their datasets.
    from . import coop, folder, hfds, packaged, synth  # noqa: F401


def list_datasets() -> list[DatasetEntry]:
    _ensure_loaded()
    return [DATASETS[k] for k in sorted(DATASETS)]


def load_task(spec: str, root: str | None = None) -> Task:
    """Build the Task named by `spec`: a catalogue name, 'imagefolder:PATH' or 'hf:NAME_OR_PATH'."""
    _ensure_loaded()
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _PREFIXES:
        if not rest:
            raise ClipfitError(f"dataset {spec!r} names no path; write {prefix}:PATH")
        return _PREFIXES[prefix](rest)
    entry = DATASETS.get(spec.lower())
    if entry is None:
        raise ClipfitError(
            f"unknown dataset {spec!r}; use a catalogue name ({', '.join(sorted(DATASETS))}), imagefolder:PATH or hf:NAME"
        )
    if entry.needs_root and not root:
        raise ClipfitError(f"dataset {entry.name!r} is read from disk: pass --root DIR (the folder holding its CoOp-layout directory)")
    return entry.builder(root)

"""The dataset catalogue: look up catalogue names (aliases resolved), `imagefolder:PATH` and `hf:NAME_OR_PATH`."""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

from ..errors import ClipfitError
from . import readers
from .dataset_registry import DATASETS, PREFIXES, SUITES, DatasetEntry
from .types import Task

# Importing a reader module registers its datasets: every module of `readers` is imported, so a new reader is a new
# module there. (The readers are found by name, at run time: the catalogue depends on the folder, not on a list.)
for _m in sorted(pkgutil.iter_modules(readers.__path__), key=lambda m: m.name):
    importlib.import_module(f"{readers.__name__}.{_m.name}")

__all__ = ["DATASETS", "DatasetEntry", "canonical_dataset", "expand_datasets", "list_datasets", "load_task",
           "rules_dataset"]


def list_datasets() -> list[DatasetEntry]:
    return [DATASETS.get(n) for n in DATASETS.list()]


def canonical_dataset(spec: str) -> str:
    """The canonical catalogue name of `spec` (aliases resolved); a 'prefix:...' spec or an unknown name unchanged."""
    prefix, sep, _ = spec.partition(":")
    if sep and prefix in PREFIXES:
        return spec
    return DATASETS.canonical(spec) if spec in DATASETS else spec


def expand_datasets(names: str | Sequence[str]) -> list[str]:
    """Dataset names with suites expanded and aliases resolved to canonical names, duplicates dropped."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[str] = []
    for n in names:
        for d in SUITES.get(n.lower(), (n,)):
            c = canonical_dataset(d)
            if c not in out:
                out.append(c)
    if not out:
        raise ClipfitError("give at least one dataset")
    return out


def rules_dataset(spec: str) -> str:
    """The dataset whose per-dataset recipe rules a run on `spec` follows: its canonical name, or the dataset it is
    another split of or a stand-in for (`food101_ln` -> `food101`, `synth_imagenet` -> `imagenet`)."""
    name = canonical_dataset(spec)
    entry = DATASETS.get(name) if name in DATASETS else None
    return entry.rules_as or name if entry else name


def load_task(spec: str, root: str | None = None) -> Task:
    """Build the Task named by `spec`: a catalogue name, 'imagefolder:PATH' or 'hf:NAME_OR_PATH'."""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in PREFIXES:
        if not rest:
            raise ClipfitError(f"dataset {spec!r} names no path; write {prefix}:PATH")
        return PREFIXES.get(prefix)(rest)
    if spec not in DATASETS:
        raise ClipfitError(
            f"unknown dataset {spec!r}; use a catalogue name ({', '.join(DATASETS.list())}), imagefolder:PATH or hf:NAME"
        )
    entry = DATASETS.get(spec)
    if entry.needs_root and not root:
        raise ClipfitError(f"dataset {entry.name!r} is read from disk: pass --root DIR (the folder holding its dataset folder; `clipfit datasets` names it)")
    return entry.builder(root)

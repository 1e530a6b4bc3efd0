"""Datasets: the data model (`types`: items, tasks, templates), reading images (`images`), one reader module per
source in `readers/` (each registers what it reads), the catalogue that looks a name up (`catalogue`, over
`dataset_registry`), few-shot sampling and the base/new split (`sampling`), transforms, the procedural world
(`synth`), and what each dataset needs under --root (`sources`, `check`).

A plug-in registers a dataset from its own package with `register_dataset` (or a 'prefix:SPEC' family with
`register_prefix`): its builder takes the root folder and returns a `Task` of `Item`s and an image reader
(`FileReader`, `ArrayReader`, or any callable from an item's key to a PIL image).
"""
from .dataset_registry import register_dataset, register_prefix
from .types import Item, Task

__all__ = ["ArrayReader", "FileReader", "Item", "Task", "register_dataset", "register_prefix"]


def __getattr__(name: str):
    if name in ("ArrayReader", "FileReader"):
        from . import images  # on first use: NumPy and Pillow are not needed to list the catalogue (`clipfit --help`)

        return getattr(images, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

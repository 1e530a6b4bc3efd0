"""Datasets: readers, catalogue, few-shot sampling, base/new split, transforms."""
from .types import ArrayReader, FileReader, Item, Task

__all__ = ["ArrayReader", "FileReader", "Item", "Task"]

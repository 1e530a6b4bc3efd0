"""Evaluation metrics, in percent, as the papers report them (WILDS' definitions for its datasets).

- accuracy: share of correct predictions.
- macro_f1: F1 averaged over the classes that occur in the true labels, as WILDS computes it for iWildCam
  (scikit-learn's f1_score with labels=the unique true labels): a class that is predicted but never true does not
  count; a true class that is never predicted counts with F1 = 0.
- worst_group_accuracy: the lowest accuracy over the groups that have items.
- worst_region_accuracy: FMoW's worst-region accuracy: the same over regions, leaving out the region "Other"
  (images whose country maps to no region), as WILDS does.

Predictions are class indices [N] or logits [N, C] (argmax taken); groups are one name per item.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.types import Item, Task
from ..errors import ClipfitError

OTHER_REGION = "Other"
METRICS = ("accuracy", "macro_f1", "worst_group_accuracy", "worst_region_accuracy")
GROUPED = ("worst_group_accuracy", "worst_region_accuracy")


def predictions(logits_or_predictions) -> np.ndarray:
    """Class indices [N] from logits [N, C] (argmax) or from indices [N]."""
    a = np.asarray(logits_or_predictions.detach().cpu() if hasattr(logits_or_predictions, "detach")
                   else logits_or_predictions)
    if a.ndim == 2:
        return a.argmax(-1)
    if a.ndim != 1:
        raise ClipfitError(f"predictions must be class indices [N] or logits [N, C], got shape {a.shape}")
    return a.astype(np.int64)


def _accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float((pred == labels).mean()) * 100.0 if len(labels) else float("nan")


def _macro_f1(pred: np.ndarray, labels: np.ndarray) -> float:
    try:
        from sklearn.metrics import f1_score
    except ImportError:
        raise ClipfitError("macro_f1 needs scikit-learn: pip install 'clipfit[data]' (or pip install scikit-learn)") from None
    if not len(labels):
        return float("nan")
    return float(f1_score(labels, pred, labels=np.unique(labels), average="macro", zero_division=0)) * 100.0


def _worst_group(pred: np.ndarray, labels: np.ndarray, groups: Sequence[str], skip: tuple[str, ...] = ()) -> float:
    g = np.asarray(groups, dtype=object)
    accs = [_accuracy(pred[g == name], labels[g == name]) for name in sorted(set(g.tolist()) - set(skip))]
    return min(accs) if accs else float("nan")


def compute(name: str, logits_or_predictions, labels, groups: Sequence[str] | None = None) -> float:
    """Metric `name` (one of METRICS) in percent; nan when there is nothing to measure."""
    if name not in METRICS:
        raise ClipfitError(f"unknown metric {name!r}; choose one of: {', '.join(METRICS)}")
    pred = predictions(logits_or_predictions)
    y = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).astype(np.int64)
    if pred.shape != y.shape:
        raise ClipfitError(f"{len(pred)} predictions for {len(y)} labels")
    if name == "accuracy":
        return _accuracy(pred, y)
    if name == "macro_f1":
        return _macro_f1(pred, y)
    if groups is None:
        raise ClipfitError(f"metric {name} needs a group per item, and this dataset has none")
    if len(groups) != len(y):
        raise ClipfitError(f"{len(groups)} groups for {len(y)} labels")
    return _worst_group(pred, y, groups, (OTHER_REGION,) if name == "worst_region_accuracy" else ())


def item_groups(task: Task, items: list[Item]) -> list[str] | None:
    """The group of each item (None when the task has no groups); an item missing from task.groups is an error."""
    if task.groups is None:
        return None
    missing = [it.key for it in items if it.key not in task.groups]
    if missing:
        raise ClipfitError(f"{task.name}: {len(missing)} items have no group (e.g. {missing[0]!r})")
    return [task.groups[it.key] for it in items]


def evaluate_all(task: Task, items: list[Item], logits_or_predictions, labels) -> dict[str, float]:
    """Every metric the task names, by name."""
    groups = item_groups(task, items) if any(m in GROUPED for m in task.metrics) else None
    return {m: compute(m, logits_or_predictions, labels, groups) for m in task.metrics}

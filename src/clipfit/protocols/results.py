"""A grid's results: its cells' values aggregated over seeds (`summarise`, what results.json holds), looked up
(`find`, `value`), and laid out as plain-text tables (`fmt`, `render`, the Average and missing-dataset labels)."""
from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import write_json

if TYPE_CHECKING:
    from .cells import Cell


def harmonic_mean(b: float | None, n: float | None) -> float | None:
    if b is None or n is None:
        return None
    return 2 * b * n / (b + n) if b + n > 0 else 0.0


def mean_std(xs: list[float | None]) -> tuple[float | None, float | None]:
    if not xs or any(x is None for x in xs):  # not applicable (a class-specific method on new classes)
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


CI95_Z = 1.96


def pooled(per_seed: list[list[float]]) -> dict[str, Any]:
    """Episode accuracies of every seed pooled: mean ± 1.96 s/sqrt(n) (s: sample standard deviation)."""
    xs = [x for seed in per_seed for x in seed]
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    means = [statistics.fmean(v) for v in per_seed]
    return {"mean": statistics.fmean(xs), "ci95": CI95_Z * s / math.sqrt(len(xs)), "episodes": len(xs),
            "std": statistics.stdev(means) if len(means) > 1 else 0.0, "values": means}


def summarise(cells: list[Cell], values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per row (cells with equal labels): {**labels, "seeds": [...], "metrics": {column: {"mean", "std",
    "values"}}}; a column of episode lists is pooled over seeds (`pooled`). A measurement counts once: cells of a row
    that read the same run's same evaluations (a method that trains nothing runs once for every seed) give one
    value, so a mean ± std is never taken over repeats of one run."""
    rows: dict[str, dict[str, Any]] = {}
    counted: set[tuple[str, str, tuple]] = set()
    for c, v in zip(cells, values):
        key = json.dumps(c.labels, sort_keys=True)
        if (key, c.job.dir, c.job.evals) in counted:
            continue
        counted.add((key, c.job.dir, c.job.evals))
        r = rows.setdefault(key, {**c.labels, "seeds": [], "raw": {}})
        r["seeds"].append(c.seed)
        for col, x in v.items():
            r["raw"].setdefault(col, []).append(x)
    out = []
    for r in rows.values():
        raw = r.pop("raw")
        metrics = {}
        for col, xs in raw.items():
            if xs and all(isinstance(x, list) for x in xs):
                metrics[col] = pooled(xs)
            else:
                mu, sd = mean_std(xs)
                metrics[col] = {"mean": mu, "std": sd, "values": xs}
        out.append({**r, "metrics": metrics})
    return out


def write_results(out: Path, summary: dict) -> dict:
    write_json(out / "results.json", summary)
    return summary


def find(rows: list[dict], **labels: Any) -> dict | None:
    """The record whose labels include `labels`."""
    for r in rows:
        if all(r.get(k) == v for k, v in labels.items()):
            return r
    return None


def value(rows: list[dict], col: str, **labels: Any) -> float | None:
    r = find(rows, **labels)
    if r is None or col not in r["metrics"]:
        return None
    return r["metrics"][col]["mean"]


def mean_or_none(xs: Iterable[float | None]) -> float | None:
    xs = list(xs)
    return statistics.fmean(xs) if xs and all(x is not None for x in xs) else None


def fmt(x: float | None, std: float | None = None, ci: float | None = None) -> str:
    if x is None:
        return "n/a"
    if ci is not None:
        return f"{x:.2f} ± {ci:.2f}"
    return f"{x:.2f}" if std is None else f"{x:.2f} ± {std:.2f}"


def render(title: str, header: list[str], rows: list[list[str]], notes: Sequence[str] = ()) -> str:
    """A plain-text table: title, header, rule, rows, then notes."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(r: list[str]) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()

    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows), *notes])


def missing_note(missing: dict[str, str]) -> list[str]:
    return [f"missing: {name} ({why})" for name, why in missing.items()]


def average_label(present: int, total: int, what: str = "datasets") -> str:
    """'Average', or 'Average (9 of 10 datasets)' when some are missing: never a silent average over fewer."""
    return "Average" if present == total else f"Average ({present} of {total} {what})"

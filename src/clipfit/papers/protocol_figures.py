"""The papers' figures drawn from a protocol's results (the LayerNorm paper's Figures 3-6, LLU's Figure 2): each
`Entry.figure` kind names a layout (`FIGURES`): its columns (a label and the dimensions of its cells, one row per
method) and how to draw them (bars or lines, `clipfit.plots`)."""
from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..plots import bars, lines
from ..protocols.regimes import QUADRANTS, dataset_mean, regime_datasets
from .compare import ComparedCell, ComparedRow, ComparedTable, ValuesFromResults
from .entries import AVERAGE
from .plan import Plan


@dataclass
class FigureLayout:
    """A figure's numbers: one row per method, one column per (label, dimensions), and how to draw them."""

    columns: list[tuple[str, dict[str, Any]]]
    draw: Callable[[Path, ComparedTable, str], Path]  # (png path, the figure's table, title) -> the png written


def _num(x: float | str) -> float | None:
    return x if isinstance(x, float) else None


def _quadrants(plan: Plan, s: dict, methods: list[str]) -> FigureLayout:
    cols = [(f"{data} data / {sim} sim.", {"regime": data, "similarity": sim}) for data, sim in QUADRANTS
            if data in s["regimes"]]

    def draw(path: Path, table: ComparedTable, title: str) -> Path:
        groups = list(table.columns)
        series = {r.labels[0]: [_num(c.ours) for c in r.cells.values()] for r in table.rows}
        return bars(path, {"": (groups, series)}, title, "test accuracy (%)", max_cols=1)

    return FigureLayout(cols, draw)


def _regime_datasets(plan: Plan, s: dict, methods: list[str]) -> FigureLayout:
    cols = []
    for regime in s["regimes"]:
        tuned = [m for m in methods if m != "zeroshot"] or methods
        ds = sorted(regime_datasets(s, regime), key=lambda d: statistics.fmean(
            [x for x in (dataset_mean(s, m, d, regime) for m in tuned) if x is not None] or [0.0]))
        cols += [(f"{regime}: {d}", {"regime": regime, "used": d}) for d in ds]

    def draw(path: Path, table: ComparedTable, title: str) -> Path:
        panels = {}
        for regime in s["regimes"]:
            keys = [c for c in table.columns if c.startswith(f"{regime}: ")]
            panels[f"{regime}-data regime"] = ([k.split(": ", 1)[1] for k in keys],
                                               {r.labels[0]: [_num(r.cells[k].ours) for k in keys] for r in table.rows})
        return bars(path, panels, title, "test metric (%)")

    return FigureLayout(cols, draw)


def _dataset_shots(plan: Plan, s: dict, methods: list[str]) -> FigureLayout:
    cols = []
    for d in s["datasets"]:
        for k in sorted({k for ks in s["shots"].get(d, {}).values() for k in ks}):
            cols.append((f"{d} {k}", {"used": d, "shots": k}))

    def draw(path: Path, table: ComparedTable, title: str) -> Path:
        panels = {}
        for d in s["datasets"]:
            keys = [c for c in table.columns if c.rsplit(" ", 1)[0] == d]
            if keys:
                xs = [int(k.rsplit(" ", 1)[1]) for k in keys]
                panels[d] = {r.labels[0]: (xs, [_num(r.cells[k].ours) for k in keys]) for r in table.rows}
        return lines(path, panels, title, "shots per class", "test metric (%)", logx=True)

    return FigureLayout(cols, draw)


def _b2n_shots(plan: Plan, s: dict, methods: list[str]) -> FigureLayout:
    shots = list(s["shots"])
    panels = [("Average", {"dataset": AVERAGE})] + [(d, {"used": d}) for d in s["datasets"] if d not in s["missing"]]
    cols = [(f"{name} {k} {metric}", {**dims, "shots": k, "metric": metric})
            for name, dims in panels for k in shots for metric in ("base", "new")]

    def draw(path: Path, table: ComparedTable, title: str) -> Path:
        out, styles = {}, {}
        for name, _ in panels:
            series = {}
            for i, r in enumerate(table.rows):
                for metric, marker, ls in (("base", "o", "-"), ("new", "x", "--")):
                    label = f"{r.labels[0]} {metric}"
                    series[label] = (shots, [_num(r.cells[f"{name} {k} {metric}"].ours) for k in shots])
                    styles[label] = {"color": f"C{i % 10}", "marker": marker, "linestyle": ls}
            out[name] = series
        return lines(path, out, title, "shots per class", "accuracy (%)", logx=True, styles=styles)

    return FigureLayout(cols, draw)


FIGURES: dict[str, Callable[[Plan, dict, list[str]], FigureLayout]] = {
    "quadrants": _quadrants, "regime_datasets": _regime_datasets, "dataset_shots": _dataset_shots,
    "b2n_shots": _b2n_shots}


def figure_table(plan: Plan, ours: ValuesFromResults, summary: dict) -> tuple[ComparedTable, FigureLayout]:
    """The entry's figure as a table of ours only (one row per method) and its layout, to draw it."""
    layout = FIGURES[plan.entry.figure](plan, summary, plan.methods)
    rows = [ComparedRow((m,), (m,), {label: ComparedCell(ours.get({**dims, "method": m}),
                                                         metric=dims.get("metric", "accuracy"))
                                     for label, dims in layout.columns}) for m in plan.methods]
    return ComparedTable(("method",), tuple(label for label, _ in layout.columns), rows, has_paper=False), layout

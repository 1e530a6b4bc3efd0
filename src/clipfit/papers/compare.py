"""Comparing ours with the paper's: our value of each cell of the paper's table, read from the protocol's results
(`ValuesFromResults`, averaged the way the paper averages) or computed without runs (`static`), laid beside the
paper's number with the difference (`compare` -> `ComparedTable`)."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..protocols.jobs import dataset_dir, shots_dir
from ..protocols.regimes import dataset_mean, regime_mean
from ..protocols.results import find, harmonic_mean, value
from .entries import AVERAGE, Entry
from .labels import cell_dims, method_of
from .numbers import load_numbers
from .plan import Plan

NOT_RUN = "not run"
MISSING = "missing"
NA = "n/a"


class CellValues(Protocol):
    """Our side of a table: the value of a cell given its dimensions, or why there is none."""

    def get(self, dims: dict[str, Any]) -> float | str: ...


class ValuesFromResults:
    """Our value of a cell, given its dimensions, from the protocol's results (and, for parameter counts and LLU's
    regulariser, from the run directories). A value, or why there is none: not run / missing / n/a."""

    def __init__(self, plan: Plan, summary: dict, runs_dir: Path):
        self.plan, self.s, self.runs_dir = plan, summary, runs_dir
        self.times: dict[str, float] = {}  # method -> ms of training per image (`Entry.time_batch`)
        self.missing = set(summary.get("missing", {}))
        shots = plan.args.get("shots")
        self.default_shots = shots if isinstance(shots, int) else (shots[0] if shots and len(shots) == 1 else None)

    def get(self, dims: dict[str, Any]) -> float | str:
        m = method_of(dims)
        if m is None:
            return NA
        if m not in self.s["methods"]:
            return NOT_RUN
        metric = dims.get("metric", "accuracy")
        if metric == "time":
            return self.times.get(m, NA)
        if dims.get("dataset") == AVERAGE:
            return self._average(dims, metric)
        return self._one(dims, m, metric)

    def _average(self, dims: dict[str, Any], metric: str) -> float | str:
        if metric == "hm" and self.plan.entry.hm_average == "hm_of_means":
            b, n = self._average({**dims, "metric": "base"}, "base"), self._average({**dims, "metric": "new"}, "new")
            if isinstance(b, str) or isinstance(n, str):
                return b if isinstance(b, str) else n
            return harmonic_mean(b, n)
        xs = [self.get({**dims, "dataset": d}) for d in self.plan.average]
        xs = [x for x in xs if x != MISSING]
        if not xs:
            return MISSING
        bad = next((x for x in xs if isinstance(x, str)), None)
        return bad if bad is not None else statistics.fmean(xs)

    def _dataset(self, dims: dict[str, Any]) -> str | None:
        if "used" in dims:
            return dims["used"]
        return self.plan.used(dims["dataset"]) if "dataset" in dims else None

    def _one(self, dims: dict[str, Any], m: str, metric: str) -> float | str:
        s, d = self.s, self._dataset(dims)
        if d is not None and d in self.missing:
            return MISSING
        k = dims.get("shots", self.default_shots)
        proto = self.plan.protocol
        if proto in ("fewshot", "base2new", "episodic") and k not in s["shots"]:
            return NOT_RUN
        if metric in ("params", "reg"):
            return self._from_runs(d, k, m, metric)
        if proto == "episodic":
            r = find(s["rows"], method=m, shots=k)
            if r is None:
                return NOT_RUN
            x = r["metrics"]["accuracy"]["mean"]
        elif proto == "regimes":
            x = self._regimes(dims, d, k, m)
        else:
            x = self._grid(proto, d, k, m, metric)
        return NA if x is None else x

    def _grid(self, proto: str, d: str | None, k: int | None, m: str, metric: str) -> float | None:
        rows = self.s["rows"]
        if proto == "fewshot":
            return value(rows, self.s["primary_metric"][d], dataset=d, shots=k, method=m)
        if proto == "base2new":
            return value(rows, metric, dataset=d, shots=k, method=m)
        return value(rows, d, method=m)  # crossdataset, domainshift: one column per dataset

    def _regimes(self, dims: dict[str, Any], d: str | None, k: int | None, m: str) -> float | None:
        s, regime = self.s, dims.get("regime")
        if "similarity" in dims:
            return regime_mean(s, m, regime, dims["similarity"])
        if d is not None and "shots" in dims:
            return value(s["rows"], s["primary_metric"][d], dataset=d, shots=k, method=m)
        if d is not None:
            return dataset_mean(s, m, d, regime)
        return regime_mean(s, m, regime)

    def _from_runs(self, d: str, k: int | None, m: str, what: str) -> float | str:
        """Trainable parameters (config.json) or LLU's identity regulariser over the last epoch (metrics.json) of
        the run directories of (dataset, shots, method), mean over the seeds run."""
        if self.plan.protocol in ("crossdataset", "domainshift"):
            d = self.s["source"]
        base = self.runs_dir / dataset_dir(d)
        dirs = [base / m] if (base / m / "config.json").exists() else \
            [base / shots_dir(k or 0) / m / f"seed{s}" for s in self.s["seeds"]]
        xs = []
        for run in dirs:
            try:
                if what == "params":
                    xs.append(float(json.loads((run / "config.json").read_text())["trainable_parameters"]))
                else:
                    history = json.loads((run / "metrics.json").read_text()).get("history") or [{}]
                    if "reg" not in history[-1]:
                        return NA
                    xs.append(float(history[-1]["reg"]))
            except (OSError, KeyError, ValueError):
                return NA
        return statistics.fmean(xs) if xs else NA


@dataclass
class ComparedCell:
    ours: float | str
    paper: str = ""  # as the paper prints it
    paper_value: float | None = None
    diff: float | None = None  # ours minus the paper's, where both are numbers of the same kind
    metric: str = "accuracy"


@dataclass
class ComparedRow:
    printed: tuple[str, ...]  # the row's labels as the paper prints them (empty below a block's first row)
    labels: tuple[str, ...]
    cells: dict[str, ComparedCell]  # column -> cell


@dataclass
class ComparedTable:
    """A table in the paper's layout with our number beside the paper's (`has_paper`: a figure's numbers have no
    printed counterpart, ours only)."""

    label_names: tuple[str, ...]
    columns: tuple[str, ...]
    rows: list[ComparedRow]
    has_paper: bool = True


def compare(entry: Entry, ours: CellValues) -> ComparedTable:
    """Every cell of the entry's numbers file: ours, the paper's, and the difference."""
    t = load_numbers(entry.numbers)
    rows = []
    for r in t.rows:
        cells = {}
        for c in t.columns:
            printed = r.cells[c]
            dims = cell_dims(entry, t, r, c)
            metric = (dims or {}).get("metric", "accuracy")
            mine = ours.get(dims) if dims else "—"
            diff = None
            if isinstance(mine, float) and printed.value is not None and metric not in ("params", "time", "reg"):
                diff = mine - printed.value
            cells[c] = ComparedCell(mine, printed.text, printed.value, diff, metric)
        rows.append(ComparedRow(r.printed, r.labels, cells))
    return ComparedTable(t.label_names, t.columns, rows)

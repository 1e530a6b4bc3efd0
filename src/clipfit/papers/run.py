"""`clipfit paper list / run`: run (or resume) exactly the runs a paper's table or figure needs, through the protocol
commands, and print it in the paper's layout: our number, the paper's number, the difference.

An entry of the registry (`registry.ENTRIES`) is a protocol call, the paper's numbers and how the printed labels map
onto our runs. `run_entry` makes the call through the Python API (`clipfit.fewshot`, `clipfit.base2new`, ...), so the
runs are the protocol's own cells, in OUT/<protocol>/ laid out as `clipfit <protocol> --out OUT/<protocol>` lays
them out: a table resumes and reuses what that command (or another table of the same protocol) already ran. Each
cell of the paper's table is then read from the protocol's results (`Ours`), averaged the way the paper averages.
Written under OUT: tables/<name>.md, .csv (one line per cell: ours, paper, difference) and .json (with the
protocol's results), and figures/<name>.png for figures.

`--dry-run` asks the protocol for its runs without running them (`protocols.dryrun`: every run of the paper's
grid, datasets that cannot be read included, the settings each resolves, an estimate from measured steps).
Without `--stand-ins` the model is the paper's backbone unless `--model` is given (`choose_model`).
"""
from __future__ import annotations

import csv
import io
import json
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ClipfitError
from ..io import write_json
from .analyses import RECORD
from .numbers import Numbers, load_numbers
from .registry import (
    ANALYSIS_KINDS,
    AVERAGE,
    ENTRIES,
    PAPERS,
    ROLES,
    STAND_IN_ARGS,
    STAND_INS,
    Entry,
)

STATIC_KINDS = ("datasets", "params")  # entries that train nothing (`static`)
NOT_RUN = "not run"
MISSING = "missing"
NA = "n/a"
PROTOCOL_OVERRIDES = {"fewshot": ("shots",), "base2new": ("shots",), "crossdataset": ("shots",),
                      "domainshift": ("shots",), "regimes": ("low_shots", "high_shots"), "episodic": ("shots", "episodes")}


def get_entry(name: str) -> Entry:
    if name in ENTRIES:
        return ENTRIES[name]
    near = [n for n in ENTRIES if n.split(":")[0] == name.split(":")[0]] or list(ENTRIES)
    raise ClipfitError(f"no table or figure {name!r}; `clipfit paper list` names them (e.g. {', '.join(near[:4])})")


def slug(name: str) -> str:
    return name.replace(":", "_")


# -- labels -> dimensions -----------------------------------------------------------------------------------------


def resolve(entry: Entry, role: str, label: str) -> dict[str, Any] | None:
    """The dimensions a printed label stands for: the entry's own meaning, else the paper-wide one of its role;
    None for a label with no run of ours."""
    if label in entry.labels:
        return dict(entry.labels[label])
    if label in entry.paper_only:
        return None
    plain = re.sub(r"^\([a-z]\)\s*", "", label)  # LLU Table 1's sub-table captions: "(b) ImageNet"
    if role == "shots" and re.fullmatch(r"\d+(-shot)?", plain):
        return {"shots": int(plain.removesuffix("-shot"))}
    table = ROLES.get(role, {})
    return {role: table[plain]} if plain in table else None


def unresolved(entry: Entry) -> list[str]:
    """Printed labels of an entry's numbers that map to nothing and are not declared paper-only (typos)."""
    if not entry.numbers:
        return []
    t = load_numbers(entry.numbers)
    bad = [c for c in t.columns if resolve(entry, entry.columns, c) is None and c not in entry.paper_only]
    for r in t.rows:
        for role, lab in zip(entry.rows, r.labels):
            if resolve(entry, role, lab) is None and lab not in entry.paper_only and lab not in bad:
                bad.append(lab)
    return bad


def cell_dims(entry: Entry, t: Numbers, row, column: str) -> dict[str, Any] | None:
    dims = dict(entry.fixed)
    for role, lab in [*zip(entry.rows, row.labels), (entry.columns, column)]:
        d = resolve(entry, role, lab)
        if d is None:
            return None
        dims.update(d)
    return dims


def method_of(dims: dict[str, Any]) -> str | None:
    return dims["method"] + dims.get("suffix", "") if "method" in dims else None


def entry_methods(entry: Entry) -> list[str]:
    """The methods an entry runs: a figure's own list, or every method its table's labels name, in order."""
    if entry.methods or not entry.numbers:
        return list(entry.methods)
    t = load_numbers(entry.numbers)
    out: list[str] = []
    for r in t.rows:
        for c in t.columns:
            dims = cell_dims(entry, t, r, c)
            m = method_of(dims) if dims else None
            if m and m not in out:
                out.append(m)
    return out


# -- the protocol call ----------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What `paper run` asks of the protocol: the API function's arguments, and how the paper's datasets map onto
    the datasets run (themselves, or their synthetic stand-ins)."""

    entry: Entry
    protocol: str
    model: str
    model_why: str  # why this model (`choose_model`)
    methods: list[str]
    seeds: list[int]
    args: dict[str, Any]  # the protocol's own arguments, datasets already mapped
    datasets: list[str]  # the paper's datasets (real names) of the call
    average: list[str]  # the paper's datasets an Average is over
    stand_ins: dict[str, str] | None  # real -> stand-in, when used
    overridden: dict[str, Any] = field(default_factory=dict)
    adjusted: dict[str, Any] = field(default_factory=dict)  # protocol arguments the stand-ins need

    def used(self, dataset: str) -> str:
        return self.stand_ins.get(dataset, dataset) if self.stand_ins else dataset

    @property
    def runs_dir_name(self) -> str:
        return self.protocol


def _dedup(xs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for x in xs:
        if x not in out:
            out.append(x)
    return out


def choose_model(entry: Entry, model: str | None, stand_ins: bool | None) -> tuple[str, str]:
    """(model, why): `--model` if given, else the embedded model with `--stand-ins`, else the paper's backbone."""
    from ..backbone import EMBEDDED_MODEL

    if model:
        return model, "--model"
    if stand_ins:
        return EMBEDDED_MODEL, "the embedded model, for --stand-ins; --model to change"
    paper = PAPERS[entry.paper]
    return paper.model, "the paper's backbone, the default without --stand-ins; --model to change"


def make_plan(entry: Entry, model: str | None = None, root: str | None = None, seeds: Sequence[int] | None = None,
              methods: Sequence[str] | None = None, stand_ins: bool | None = None,
              overrides: dict[str, Any] | None = None) -> Plan:
    """The protocol call of `entry` for these options: on the real datasets (read from `root`) and the paper's
    backbone, or with `stand_ins=True` on synthetic stand-ins and the embedded model (`--model` changes either)."""
    from ..data.catalogue import expand_datasets
    from ..protocols.transfer import DEFAULT_TARGETS

    if entry.needs:
        raise ClipfitError(f"{entry.name} needs {entry.needs}; `clipfit paper list` shows what runs now")
    if entry.call is None:
        raise ClipfitError(f"{entry.name} has no protocol call")
    protocol, args = entry.call.protocol, dict(entry.call.args)
    model, why = choose_model(entry, model, stand_ins)
    every = entry_methods(entry)
    chosen = list(every)
    if methods:
        unknown = [m for m in methods if m not in every]
        if unknown:
            raise ClipfitError(f"--methods {unknown[0]}: {entry.name} runs {', '.join(every)}")
        chosen = [m for m in every if m in methods]
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    allowed = PROTOCOL_OVERRIDES[protocol]
    for k in overrides:
        if k not in allowed:
            raise ClipfitError(f"--{k.replace('_', '-')}: {entry.name} runs the {protocol} protocol, which takes "
                               f"{', '.join('--' + a.replace('_', '-') for a in allowed)}")
    if "shots" in overrides and protocol in ("crossdataset", "domainshift"):
        if len(overrides["shots"]) != 1:
            raise ClipfitError(f"--shots: {entry.name} trains on one shot count")
        overrides["shots"] = overrides["shots"][0]
    mapping = dict(STAND_INS) if stand_ins else None
    adjusted = {k: v for k, v in STAND_IN_ARGS.get(protocol, {}).items()
                if mapping and k not in args and k not in overrides}
    args.update(adjusted)
    args.update(overrides)

    def use(names: list[str]) -> list[str]:
        if mapping is None:
            return names
        absent = [d for d in names if d not in mapping]
        if absent:
            raise ClipfitError(f"dataset {absent[0]} has no synthetic stand-in; run {entry.name} on the real data "
                               "(--root) or without --stand-ins")
        return _dedup([mapping[d] for d in names])

    if protocol in ("fewshot", "base2new", "regimes"):
        real = expand_datasets(args.pop("datasets"))
        args["datasets"] = use(real)
        average = real
    elif protocol in ("crossdataset", "domainshift"):
        source = expand_datasets([args.pop("source", "imagenet")])[0]
        targets = expand_datasets(args.pop("targets", DEFAULT_TARGETS[protocol]))
        args["source"] = use([source])[0]
        args["targets"] = [t for t in use(targets) if t != args["source"]]
        real, average = [source, *targets], targets
    else:  # episodic
        real = expand_datasets([args.pop("dataset")])
        args["dataset"] = use(real)[0]
        average = real
    if entry.average is not None:
        average = list(entry.average)
    return Plan(entry, protocol, model, why, chosen, list(seeds or (1, 2, 3)), args, real, average, mapping, overrides,
                adjusted)


def entry_datasets(entry: Entry) -> list[str]:
    """The real datasets an entry reads (none for parameter counts)."""
    from ..data.catalogue import expand_datasets

    if entry.call is None:
        return []
    args = entry.call.args
    if entry.call.protocol in ("train", "timing"):
        return expand_datasets([args["dataset"]])
    if entry.call.protocol == "datasets":
        return expand_datasets(args["datasets"])
    if entry.call.protocol == "params":
        return []
    return make_plan(replace(entry, figure=None), stand_ins=False).datasets


def api_function(protocol: str) -> Callable[..., Any]:
    from .. import api

    return {"fewshot": api.fewshot, "base2new": api.base2new, "crossdataset": api.crossdataset,
            "domainshift": api.domainshift, "regimes": api.regimes, "episodic": api.episodic}[protocol]


def call_protocol(plan: Plan, out: Path, root: str | None, device: str | None, progress: bool,
                  echo: Callable[[str], None], skip_missing: bool, settings: dict[str, Any], dry_run: bool = False):
    """Run the plan's protocol call: its results.json content; with `dry_run`, its planned runs (a
    `protocols.dryrun.PlannedGrid`)."""
    from ..protocols.cells import MissingDatasets

    kwargs = dict(plan.args, out=out / plan.runs_dir_name, methods=plan.methods, seeds=plan.seeds, root=root,
                  device=device, progress=progress, echo=echo, dry_run=dry_run, **settings)
    if plan.protocol != "episodic":
        kwargs["skip_missing"] = skip_missing
    try:
        res = api_function(plan.protocol)(plan.model, **kwargs)
    except MissingDatasets as e:
        if plan.stand_ins:
            raise
        raise ClipfitError(f"{e}; or pass --stand-ins to run {plan.entry.name} on synthetic stand-ins") from None
    return res if dry_run else res.summary


# -- our numbers ----------------------------------------------------------------------------------------------------


class Ours:
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
            from ..protocols.results import harmonic_mean

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
        from ..protocols.results import find, value

        s, rows, d = self.s, self.s["rows"], self._dataset(dims)
        if d is not None and d in self.missing:
            return MISSING
        k = dims.get("shots", self.default_shots)
        proto = self.plan.protocol
        if proto in ("fewshot", "base2new", "episodic") and k not in s["shots"]:
            return NOT_RUN
        if metric in ("params", "reg"):
            return self._from_runs(d, k, m, metric)
        if proto == "fewshot":
            x = value(rows, s["primary_metric"][d], dataset=d, shots=k, method=m)
        elif proto == "base2new":
            x = value(rows, metric, dataset=d, shots=k, method=m)
        elif proto in ("crossdataset", "domainshift"):
            x = value(rows, d, method=m)
        elif proto == "regimes":
            from ..protocols.regimes import dataset_mean, regime_mean

            regime = dims.get("regime")
            if "similarity" in dims:
                x = regime_mean(s, m, regime, dims["similarity"])
            elif d is not None and "shots" in dims:
                x = value(rows, s["primary_metric"][d], dataset=d, shots=k, method=m)
            elif d is not None:
                x = dataset_mean(s, m, d, regime)
            else:
                x = regime_mean(s, m, regime)
        else:  # episodic
            r = find(rows, method=m, shots=k)
            x = r["metrics"]["accuracy"]["mean"] if r else None
            if r is None:
                return NOT_RUN
        return NA if x is None else x

    def _from_runs(self, d: str, k: int | None, m: str, what: str) -> float | str:
        """Trainable parameters (config.json) or LLU's identity regulariser over the last epoch (metrics.json) of
        the run directories of (dataset, shots, method), mean over the seeds run."""
        from ..protocols.jobs import dataset_dir, shots_dir

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


# -- the table side by side -----------------------------------------------------------------------------------------


@dataclass
class Cell:
    ours: float | str
    paper: str = ""
    paper_value: float | None = None
    diff: float | None = None
    metric: str = "accuracy"


@dataclass
class Row:
    printed: tuple[str, ...]
    labels: tuple[str, ...]
    cells: dict[str, Cell]


@dataclass
class Side:
    """A table in the paper's layout with our number beside the paper's."""

    label_names: tuple[str, ...]
    columns: tuple[str, ...]
    rows: list[Row]
    has_paper: bool = True


def fmt_value(x: float | str, metric: str) -> str:
    if isinstance(x, str):
        return x
    if metric in ("params", "count"):
        return f"{round(x):,}"
    if metric == "reg":
        return f"{x:.2g}"
    if metric == "time":
        return f"{x:.3g}ms"
    return f"{x:.2f}"


def compare(entry: Entry, ours: Ours) -> Side:
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
            cells[c] = Cell(mine, printed.text, printed.value, diff, metric)
        rows.append(Row(r.printed, r.labels, cells))
    return Side(t.label_names, t.columns, rows)


def side_rows(side: Side) -> list[list[str]]:
    """The printed rows: for each of the paper's rows, our line, the paper's line and the difference."""
    out = []
    blank = [""] * len(side.label_names)
    for r in side.rows:
        out.append(list(r.printed) + (["ours"] if side.has_paper else [])
                   + [fmt_value(c.ours, c.metric) for c in r.cells.values()])
        if side.has_paper:
            out.append(blank + ["paper"] + [c.paper for c in r.cells.values()])
            out.append(blank + ["diff"] + ["" if c.diff is None else f"{c.diff:+,.0f}" if c.metric == "count"
                                           else f"{c.diff:+.2f}" for c in r.cells.values()])
    return out


def side_header(side: Side) -> list[str]:
    return list(side.label_names) + ([""] if side.has_paper else []) + list(side.columns)


def markdown(title: str, header: list[str], rows: list[list[str]], notes: Sequence[str]) -> str:
    def esc(x: str) -> str:
        return str(x).replace("|", "\\|")

    lines = [f"**{esc(title)}**", "", "| " + " | ".join(map(esc, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines + ([""] + [f"- {esc(n)}" for n in notes] if notes else [])) + "\n"


def write_side(tables: Path, name: str, title: str, side: Side, notes: Sequence[str]) -> list[Path]:
    """tables/<name>.md and .csv of a table laid out beside the paper's."""
    tables.mkdir(parents=True, exist_ok=True)
    base = tables / slug(name)
    md, csv_file = base.with_suffix(".md"), base.with_suffix(".csv")
    md.write_text(markdown(title, side_header(side), side_rows(side), notes), encoding="utf-8")
    csv_file.write_text(side_csv(name, side), encoding="utf-8")
    return [md, csv_file]


def side_cells(side: Side) -> list[dict]:
    """The JSON of a table's cells: ours, the paper's, the difference."""
    return [{"labels": list(r.labels), "cells": {
        c: {"ours": cell.ours, "paper": cell.paper, "paper_value": cell.paper_value, "diff": cell.diff}
        for c, cell in r.cells.items()}} for r in side.rows]


def side_csv(name: str, side: Side) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["entry", *side.label_names, "column", "ours", "paper", "diff"])
    for r in side.rows:
        for c, cell in r.cells.items():
            ours = cell.ours if isinstance(cell.ours, str) else repr(cell.ours)
            w.writerow([name, *r.labels, c, ours, cell.paper, "" if cell.diff is None else repr(cell.diff)])
    return buf.getvalue()


# -- figures drawn from a protocol's results ------------------------------------------------------------------------


@dataclass
class Grid:
    """A figure's numbers: one row per method, one column per (label, dimensions), and how to draw them."""

    columns: list[tuple[str, dict[str, Any]]]
    draw: Callable[[Path, Side, str], Path]


def _quadrants(plan: Plan, s: dict, methods: list[str]) -> Grid:
    from ..plots import bars
    from ..protocols.regimes import QUADRANTS

    cols = [(f"{data} data / {sim} sim.", {"regime": data, "similarity": sim}) for data, sim in QUADRANTS
            if data in s["regimes"]]

    def draw(path: Path, side: Side, title: str) -> Path:
        groups = list(side.columns)
        series = {r.labels[0]: [_num(c.ours) for c in r.cells.values()] for r in side.rows}
        return bars(path, {"": (groups, series)}, title, "test accuracy (%)", max_cols=1)

    return Grid(cols, draw)


def _regime_datasets(plan: Plan, s: dict, methods: list[str]) -> Grid:
    from ..plots import bars
    from ..protocols.regimes import dataset_mean, regime_datasets

    cols = []
    for regime in s["regimes"]:
        tuned = [m for m in methods if m != "zeroshot"] or methods
        ds = sorted(regime_datasets(s, regime), key=lambda d: statistics.fmean(
            [x for x in (dataset_mean(s, m, d, regime) for m in tuned) if x is not None] or [0.0]))
        cols += [(f"{regime}: {d}", {"regime": regime, "used": d}) for d in ds]

    def draw(path: Path, side: Side, title: str) -> Path:
        panels = {}
        for regime in s["regimes"]:
            keys = [c for c in side.columns if c.startswith(f"{regime}: ")]
            panels[f"{regime}-data regime"] = ([k.split(": ", 1)[1] for k in keys],
                                               {r.labels[0]: [_num(r.cells[k].ours) for k in keys] for r in side.rows})
        return bars(path, panels, title, "test metric (%)")

    return Grid(cols, draw)


def _dataset_shots(plan: Plan, s: dict, methods: list[str]) -> Grid:
    from ..plots import lines

    cols = []
    for d in s["datasets"]:
        for k in sorted({k for ks in s["shots"].get(d, {}).values() for k in ks}):
            cols.append((f"{d} {k}", {"used": d, "shots": k}))

    def draw(path: Path, side: Side, title: str) -> Path:
        panels = {}
        for d in s["datasets"]:
            keys = [c for c in side.columns if c.rsplit(" ", 1)[0] == d]
            if keys:
                xs = [int(k.rsplit(" ", 1)[1]) for k in keys]
                panels[d] = {r.labels[0]: (xs, [_num(r.cells[k].ours) for k in keys]) for r in side.rows}
        return lines(path, panels, title, "shots per class", "test metric (%)", logx=True)

    return Grid(cols, draw)


def _b2n_shots(plan: Plan, s: dict, methods: list[str]) -> Grid:
    from ..plots import lines

    shots = list(s["shots"])
    panels = [("Average", {"dataset": AVERAGE})] + [(d, {"used": d}) for d in s["datasets"] if d not in s["missing"]]
    cols = [(f"{name} {k} {metric}", {**dims, "shots": k, "metric": metric})
            for name, dims in panels for k in shots for metric in ("base", "new")]

    def draw(path: Path, side: Side, title: str) -> Path:
        out, styles = {}, {}
        for name, _ in panels:
            series = {}
            for i, r in enumerate(side.rows):
                for metric, marker, ls in (("base", "o", "-"), ("new", "x", "--")):
                    label = f"{r.labels[0]} {metric}"
                    series[label] = (shots, [_num(r.cells[f"{name} {k} {metric}"].ours) for k in shots])
                    styles[label] = {"color": f"C{i % 10}", "marker": marker, "linestyle": ls}
            out[name] = series
        return lines(path, out, title, "shots per class", "accuracy (%)", logx=True, styles=styles)

    return Grid(cols, draw)


FIGURES: dict[str, Callable[[Plan, dict, list[str]], Grid]] = {
    "quadrants": _quadrants, "regime_datasets": _regime_datasets, "dataset_shots": _dataset_shots,
    "b2n_shots": _b2n_shots}


def _num(x: float | str) -> float | None:
    return x if isinstance(x, float) else None


def figure_side(plan: Plan, ours: Ours, summary: dict) -> tuple[Side, Grid]:
    grid = FIGURES[plan.entry.figure](plan, summary, plan.methods)
    rows = [Row((m,), (m,), {label: Cell(ours.get({**dims, "method": m}), metric=dims.get("metric", "accuracy"))
                             for label, dims in grid.columns}) for m in plan.methods]
    return Side(("method",), tuple(label for label, _ in grid.columns), rows, has_paper=False), grid


# -- paper run ------------------------------------------------------------------------------------------------------


@dataclass
class PaperResult:
    """What `paper run` produced: the printed text, the JSON object, and the files written."""

    text: str
    data: dict
    files: list[Path] = field(default_factory=list)


def describe(plan: Plan, settings: dict[str, Any]) -> str:
    paper = PAPERS[plan.entry.paper]
    what = [f"ours: {plan.model} ({plan.model_why})", f"seeds {' '.join(map(str, plan.seeds))}"]
    if settings:
        what.append("settings " + " ".join(f"{k}={v}" for k, v in settings.items()))
    for k, v in plan.overridden.items():
        what.append(f"{k.replace('_', ' ')} {_show(v)} (the paper's: {_show(_papers_value(plan, k))})")
    text = ", ".join(what)
    if plan.stand_ins:
        groups: dict[str, list[str]] = {}
        for d in plan.datasets:
            groups.setdefault(plan.used(d), []).append(d)
        text += ("; on synthetic stand-ins (" + "; ".join(f"{', '.join(v)} -> {k}" for k, v in groups.items())
                 + ")" + "".join(f", {k.replace('_', ' ')} {_show(v)} (the stand-ins' classes have 64 training "
                                 "images)" for k, v in plan.adjusted.items())
                 + f". The paper's numbers are for {paper.backbone} on the real datasets: not comparable.")
    else:
        text += f". The paper's: {paper.backbone} on the real datasets."
    return text


def _show(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def _papers_value(plan: Plan, key: str) -> Any:
    """What the paper used for a protocol argument the command overrode."""
    from .. import recipes

    if key in plan.entry.call.args:
        return plan.entry.call.args[key]
    return {"low_shots": recipes.LAYERNORM_LOW_DATA_SHOTS, "high_shots": recipes.LAYERNORM_HIGH_DATA_SHOTS}.get(key, "?")


def average_note(plan: Plan, summary: dict) -> list[str]:
    present = [d for d in plan.average if plan.used(d) not in summary.get("missing", {})]
    if len(present) == len(plan.average):
        return []
    return [f"Average (ours): over {len(present)} of {len(plan.average)} datasets; missing: "
            + ", ".join(d for d in plan.average if d not in present)]


def run_entry(name: str, *, out: str | Path, model: str | None = None, root: str | None = None,
              seeds: Sequence[int] | None = None, methods: Sequence[str] | None = None, stand_ins: bool | None = None,
              dry_run: bool = False, device: str | None = None, progress: bool = True,
              echo: Callable[[str], None] = lambda s: None, skip_missing: bool = False,
              overrides: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> PaperResult:
    entry = get_entry(name)
    settings = dict(settings or {})
    if entry.call is not None and entry.call.protocol in STATIC_KINDS:  # nothing to train: Table 8, Figure 2
        from .static import run_static

        return run_static(entry, Path(out), root, dry_run)
    if entry.figure in ANALYSIS_KINDS:
        return run_analysis(entry, out=Path(out), model=model, root=root, seeds=seeds, methods=methods,
                            stand_ins=stand_ins, dry_run=dry_run, device=device, progress=progress, echo=echo,
                            skip_missing=skip_missing, overrides=overrides, settings=settings)
    plan = make_plan(entry, model, root, seeds, methods, stand_ins, overrides)
    out = Path(out)
    runs_dir = out / plan.runs_dir_name
    if dry_run:
        return dry_run_entry(plan, out, root, device, echo, skip_missing, settings)
    summary = call_protocol(plan, out, root, device, progress, echo, skip_missing, settings)
    ours = Ours(plan, summary, runs_dir)
    if entry.time_batch:  # training time per image: every method's step measured side by side, here
        from .analyses import measure_steps

        dataset = plan.args.get("datasets", [plan.args.get("source")])[0]
        rows = measure_steps(plan.model, dataset, root, [m for m in plan.methods if m != "zeroshot"],
                             (entry.time_batch,), device, settings)
        ours.times = {m: per * 1000 for m, _, _, per in rows}
    paper = PAPERS[entry.paper]
    title = f"{paper.short} {entry.label}: {entry.title}"
    notes = [describe(plan, settings), *entry.notes, *average_note(plan, summary)]
    files = []
    grid = None
    if entry.numbers:
        side = compare(entry, ours)
        notes.insert(1, "each row: our number, the paper's, and ours minus the paper's")
    else:
        side, grid = figure_side(plan, ours, summary)
    header, body = side_header(side), side_rows(side)
    from ..protocols.results import render

    text = render(title, header, body, notes)
    tables, figures = out / "tables", out / "figures"
    base = slug(entry.name)
    files += write_side(tables, entry.name, title, side, notes)
    if grid is not None:
        files.append(grid.draw(figures / f"{base}.png", side, title))
        text += f"\nfigure: {files[-1]}"
    data = {"name": entry.name, "paper": entry.paper, "label": entry.label, "title": title, "notes": notes,
            "model": plan.model, "model_why": plan.model_why, "seeds": plan.seeds,
            "settings": json.loads(json.dumps(settings)),
            "stand_ins": plan.stand_ins and {d: plan.used(d) for d in plan.datasets},
            "header": header, "rows": side_cells(side), "files": [str(f) for f in files], "protocol": summary}
    write_json(tables / f"{base}.json", data)
    files.append(tables / f"{base}.json")
    data["files"] = [str(f) for f in files]
    return PaperResult(text, data, files)


def dry_run_entry(plan: Plan, out: Path, root: str | None, device: str | None, echo: Callable[[str], None],
                  skip_missing: bool, settings: dict[str, Any]) -> PaperResult:
    """Every run of the entry's grid (datasets that cannot be read included), the settings each resolves, their
    status and an estimate of their time (`protocols.dryrun`); a sweep: its grid for every value of its setting."""
    from ..protocols.dryrun import PlannedGrid, merged

    calls, notes = [(out, settings)], []
    if plan.entry.sweep:
        from .analyses import sweep_values

        key = plan.entry.sweep[0]
        values, notes = sweep_values(plan.entry, plan.model)
        calls = [(out / "sweeps" / f"{key}{v:g}", {**settings, key: v}) for v in values]
    grids = [call_protocol(plan, where, root, device, False, echo, skip_missing, st, dry_run=True) for where, st in calls]
    entry, paper = plan.entry, PAPERS[plan.entry.paper]
    title = (f"{paper.short} {entry.label} — dry run: {plan.protocol}, methods {', '.join(plan.methods)}; every run, its "
             "settings and status; nothing trains")
    grid = PlannedGrid(plan.protocol, merged([g.dry for g in grids]), plan.model, root, device, echo, title,
                       [describe(plan, settings), *notes], (entry.sweep[0],) if entry.sweep else ())
    data = {"name": entry.name, **grid.data, "methods": plan.methods, "seeds": plan.seeds, "model_why": plan.model_why,
            "args": json.loads(json.dumps(plan.args)), "stand_ins": plan.stand_ins and {d: plan.used(d) for d in plan.datasets}}
    return PaperResult(grid.text, data)


# -- paper list -----------------------------------------------------------------------------------------------------


def describe_call(entry: Entry) -> str:
    if entry.call is None:
        return ""
    args = entry.call.args
    if entry.call.protocol == "train":
        return (f"train {entry.methods[0]} on {args['dataset']}, {args['shots']} shots, with record={RECORD}: "
                + ", ".join(f"{k}" + (f" ({' '.join(f'{a}={b}' for a, b in v.items())})" if v else "")
                            for k, v in args["variants"].items()))
    if entry.sweep:
        return (f"{entry.call.protocol} " + " ".join(f"{k}={_show(v)}" for k, v in args.items())
                + f" for each {entry.sweep[0]} in {_show(entry.sweep[1])}")

    return f"{entry.call.protocol} " + " ".join(f"{k}={_show(v)}" for k, v in args.items())


def list_entries() -> list[dict]:
    out = []
    for e in ENTRIES.values():
        out.append({"name": e.name, "paper": e.paper, "kind": e.kind, "label": e.label, "title": e.title,
                    "protocol": e.call.protocol if e.call else None,
                    "args": {k: list(v) if isinstance(v, tuple) else v for k, v in (e.call.args if e.call else {}).items()},
                    "methods": entry_methods(e), "numbers": e.numbers, "needs": e.needs,
                    "runs": describe_call(e) + (f"; methods {','.join(entry_methods(e))}" if entry_methods(e) else "")
                    + ("; seeds 1,2,3" if e.call and e.call.protocol not in ("train", "timing", *STATIC_KINDS) else
                       "; seed 1" if e.call and e.call.protocol == "train" else "")})
    return out


def list_text(entries: list[dict]) -> str:
    lines = []
    for e in entries:
        head = f"{e['name']:20s} {PAPERS[e['paper']].short} {e['label']}: {e['title']}"
        lines.append(head)
        lines.append(" " * 21 + (f"needs {e['needs']}" if e["needs"] else f"runs: {e['runs']}"))
    return "\n".join(lines)


# -- figures that are analyses (clipfit.papers.analyses) ------------------------------------------------------------


def run_analysis(entry: Entry, *, out: Path, model: str | None, root: str | None, seeds: Sequence[int] | None,
                 methods: Sequence[str] | None, stand_ins: bool | None, dry_run: bool, device: str | None,
                 progress: bool, echo: Callable[[str], None], skip_missing: bool, overrides: dict[str, Any] | None,
                 settings: dict[str, Any]) -> PaperResult:
    """A figure that is an analysis: trained variants with recording, a t-SNE, a sweep of a setting through the
    entry's protocol call, or step times against the batch size. Writes figures/<name>.png and tables/<name>.csv,
    .md and .json as a table does."""
    from ..plots import lines
    from ..protocols.results import render
    from . import analyses as an

    given, (model, why) = model, choose_model(entry, model, stand_ins)
    chosen = [m for m in entry.methods if not methods or m in methods]
    paper = PAPERS[entry.paper]
    title = an.title_of(entry)
    what = f"ours: {model} ({why})" + (f", settings {' '.join(f'{k}={v}' for k, v in settings.items())}" if settings else "")
    if stand_ins:
        what += (f"; on synthetic stand-ins. The paper's figure is for {paper.backbone} on the real datasets: not "
                 "comparable.")
    notes = [what, *entry.notes]
    if dry_run and entry.figure == "sweep":
        return dry_run_entry(make_plan(replace(entry, figure=None), given, root, seeds, chosen or None, stand_ins,
                                       overrides), out, root, device, echo, skip_missing, settings)
    if dry_run:
        data = [] if stand_ins else _data_lines(entry_datasets(entry), root)
        text = "\n".join([f"{title} — dry run", notes[0], f"would run: {describe_call(entry)}", *data])
        return PaperResult(text, {"name": entry.name, "dry_run": True, "model": model, "model_why": why,
                                  "runs": describe_call(entry), "data": data})
    figures, tables = out / "figures", out / "tables"
    figures.mkdir(parents=True, exist_ok=True)
    tables.mkdir(parents=True, exist_ok=True)
    base = slug(entry.name)
    kind = entry.figure
    files: list[Path] = []
    if kind in ("layers", "tsne"):
        seed = (list(seeds) if seeds else [1])[0]
        runs, used = an.train_variants(entry, out, model, root, seed, bool(stand_ins), device, progress, echo, settings)
        notes.append(f"dataset: {entry.call.args['dataset']}" + (f" -> {used}" if used != entry.call.args['dataset']
                                                                  else "") + f", seed {seed}")
        if kind == "layers":
            files = an.run_layers(entry, runs, figures, base)
            header = ["run", "series", "layer", "param", "change", "grad_sq_sum"]
            body = [[*r[:4], *(f"{float(x):.4g}" if x else NA for x in r[4:])]
                    for r in csv.reader((figures / base / "layers.csv").read_text().splitlines()[1:])]
        else:
            from ..analyses import tsne

            label, run = next(iter(runs.items()))
            files = tsne(run, figures / base, _slug_run(label), entry.call.args.get("points", 400), device)
            png = next(f for f in files if f.suffix == ".png")
            (figures / f"{base}.png").write_bytes(png.read_bytes())
            files.insert(0, figures / f"{base}.png")
            scores = json.loads(next(f for f in files if f.suffix == ".json").read_text())["silhouette_cosine"]
            header = ["features", "silhouette (cosine, by class)"]
            body = [[k, f"{v:.4f}" if v is not None else NA] for k, v in scores.items()]
    elif kind == "sweep":
        def plan_for(e: Entry) -> Plan:
            return make_plan(replace(e, figure=None), given, root, seeds, chosen or None, stand_ins, overrides)

        def call(plan: Plan, where: Path, st: dict) -> dict:
            return call_protocol(plan, where, root, device, progress, echo, skip_missing, st)

        data, body, more = an.run_sweep(entry, plan_for, call, out, settings, echo)
        notes += more
        key = data["key"]
        files.append(lines(figures / f"{base}.png", data["curves"], title, key, f"average {data['metric']} (%)"))
        header = ["shots", "method", key, data["metric"]]
        body = [[str(k), m, str(v), fmt_value(x, "accuracy")] for k, m, v, x in body]
    else:  # timing
        args = entry.call.args
        dataset = STAND_INS.get(args["dataset"], args["dataset"]) if stand_ins else args["dataset"]
        rows = an.measure_steps(model, dataset, root, chosen, args["batch_sizes"], device, settings)
        notes.append(f"dataset: {dataset}; device: {device or 'auto'}")
        curves: dict[str, tuple[list, list]] = {}
        for m, b, sec, _ in rows:
            curves.setdefault(m, ([], []))
            curves[m][0].append(b)
            curves[m][1].append(sec * 1000)
        files.append(lines(figures / f"{base}.png", {"": curves}, title, "batch size", "ms per training step",
                           logx=True, max_cols=1))
        header = ["method", "batch size", "ms per step", "ms per image"]
        body = [[m, str(b), f"{sec * 1000:.2f}", f"{per * 1000:.3f}"] for m, b, sec, per in rows]
    text = render(title, header, body, notes) + f"\nfigure: {figures / f'{base}.png'}"
    (tables / f"{base}.md").write_text(markdown(title, header, body, notes), encoding="utf-8")
    csv_buf = io.StringIO()
    csv.writer(csv_buf, lineterminator="\n").writerows([header, *body])
    (tables / f"{base}.csv").write_text(csv_buf.getvalue(), encoding="utf-8")
    data = {"name": entry.name, "paper": entry.paper, "label": entry.label, "title": title, "notes": notes,
            "model": model, "header": header, "rows": body}
    files += [tables / f"{base}.md", tables / f"{base}.csv", tables / f"{base}.json"]
    data["files"] = [str(f) for f in files]
    write_json(tables / f"{base}.json", data)
    return PaperResult(text, data, files)


def _data_lines(names: list[str], root: str | None) -> list[str]:
    """The state of each dataset under --root, with what to do about a missing or incomplete one."""
    if not root:
        return [f"data: {', '.join(names)} read from --root, which is not given"]
    from ..data.check import check

    lines = []
    for f in check(names, root):
        lines.append(f"data: {f.name} {f.status}: {f.detail}")
        lines += [f"      {x}" for x in f.fix]
    return lines


def _slug_run(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")

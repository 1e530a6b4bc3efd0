"""What runs recorded as they trained, drawn: curves.png/.csv (every number of the per-epoch history), change.png,
grads.png and layers.csv (what `record=change,grads` recorded, per layer of each series: CLIPFit Figures 3, 4, 7-11
left), steps.png/.csv (what `record=steps` recorded: the change of chosen layers at every step, CLIPFit Figure 11
right). Several runs are drawn together, one line each."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..engine.record import RECORD_JSON, layer_table
from ..engine.rundir import RunDir
from ..io import write_csv
from ..method.base import parse_layers
from ..plots import lines


def _record(run) -> dict | None:
    return json.loads(run.read_file(RECORD_JSON)) if run.file(RECORD_JSON).exists() else None


class SeriesView:
    """A run directory whose record.json shows only the series whose name starts with `series` (text / image)."""

    def __init__(self, run: RunDir, series: str | None):
        self.run, self.series = run, series

    def file(self, name: str) -> Path:
        return self.run.file(name)

    def read_metrics(self):
        return self.run.read_metrics()

    def read_file(self, name: str) -> bytes:
        data = self.run.read_file(name)
        if not self.series or not name.endswith(".json"):
            return data
        rec = json.loads(data)
        rec["series"] = {s: n for s, n in rec["series"].items() if s.startswith(self.series)}
        return json.dumps(rec).encode()


def only_series(runs: dict[str, Path], series: str | None) -> dict[str, SeriesView]:
    """The runs, each showing only its recorded series whose name starts with `series` (all of them for None)."""
    return {label: SeriesView(RunDir(p), series) for label, p in runs.items()}


def curves(runs: dict[str, Any], out: Path) -> list[Path]:
    """curves.png/.csv: every number of each run's per-epoch history, one panel per number."""
    panels: dict[str, dict[str, tuple[list[float], list[float | None]]]] = {}
    rows = []
    for name, run in runs.items():
        history = (run.read_metrics() or {}).get("history") or []
        keys = [k for k in dict.fromkeys(k for h in history for k in h) if k != "epoch"]
        for k in keys:
            xs = [h["epoch"] for h in history if isinstance(h.get(k), (int, float))]
            ys = [h[k] for h in history if isinstance(h.get(k), (int, float))]
            if xs:
                panels.setdefault(k, {})[name] = (xs, ys)
                rows += [[name, x, k, y] for x, y in zip(xs, ys)]
    if not panels:
        return []
    return [write_csv(out / "curves.csv", ["run", "epoch", "what", "value"], rows),
            lines(out / "curves.png", panels, "training curves", "epoch", "")]


def layer_figures(runs: dict[str, Any], out: Path) -> list[Path]:
    """change.png and grads.png: per series, each layer's final change / summed squared gradient, one line per run."""
    tables = {name: layer_table(rec) for name, run in runs.items() if (rec := _record(run)) and rec["epochs"]}
    if not tables:
        return []
    files = [write_csv(out / "layers.csv", ["run", "series", "layer", "param", "change", "grad_sq_sum"],
                       [[name, r["series"], r["layer"], r["param"], r["change"], r["grad_sq_sum"]]
                        for name, rows in tables.items() for r in rows])]
    for what, fname, ylabel in (("change", "change.png", "||p - p0||^2"), ("grad_sq_sum", "grads.png",
                                                                          "sum of squared gradients")):
        panels: dict[str, dict] = {}
        for name, rows in tables.items():
            for series in dict.fromkeys(r["series"] for r in rows):
                pts = [(r["layer"], r[what]) for r in rows if r["series"] == series and r[what] is not None]
                if pts:
                    panels.setdefault(series, {})[name] = ([p[0] for p in pts], [p[1] for p in pts])
        if panels:
            title = "parameter change per layer" if what == "change" else "squared gradient sum per layer"
            files.append(lines(out / fname, panels, title, "layer", ylabel, max_cols=3))
    return files


def step_figure(runs: dict[str, Any], out: Path, layers: str = "1") -> list[Path]:
    """steps.png/.csv: the change at every step of the layers `layers` names (as `ln_layers` does) of each series."""
    panels: dict[str, dict] = {}
    rows = []
    for name, run in runs.items():
        rec = _record(run)
        if not rec or not rec["steps"]:
            continue
        index = {n: i for i, n in enumerate(rec["params"])}
        for series, names in rec["series"].items():
            for li in parse_layers(layers, len(names), "--layers"):
                xs = [s["step"] for s in rec["steps"]]
                ys = [s["change"][index[names[li]]] for s in rec["steps"]]
                label = f"{name} layer {li + 1}" if len(runs) > 1 else f"layer {li + 1}"
                panels.setdefault(series, {})[label] = (xs, ys)
                rows += [[name, series, li + 1, x, y] for x, y in zip(xs, ys)]
    if not panels:
        return []
    return [write_csv(out / "steps.csv", ["run", "series", "layer", "step", "change"], rows),
            lines(out / "steps.png", panels, "change at each iteration", "step", "||p - p0||^2", max_cols=3)]

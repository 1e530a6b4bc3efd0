"""A protocol grid's results.json drawn: fewshot grids as accuracy against shots per method (the CoOp-style curve,
with the average over datasets first), base2new grids as base / new / HM bars per method."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from ..errors import ClipfitError
from ..io import write_csv
from ..plots import bars, lines


def grid_figures(results: Path, out: Path, name: str) -> list[Path]:
    """<name>_shots.png/.csv of a fewshot grid, <name>_b2n.png/.csv of a base2new grid."""
    s = json.loads(results.read_text(encoding="utf-8"))
    proto, rows = s.get("protocol"), s.get("rows", [])
    methods = list(dict.fromkeys(r["method"] for r in rows))
    if proto == "fewshot":
        return _fewshot(s, rows, methods, out, name)
    if proto == "base2new":
        return _base2new(s, rows, methods, out, name)
    raise ClipfitError(f"{results}: analyze draws fewshot and base2new grids, not {proto!r}")


def _fewshot(s: dict, rows: list[dict], methods: list[str], out: Path, name: str) -> list[Path]:
    panels, table = {}, []
    for d in s["datasets"]:
        metric = s["primary_metric"][d]
        for m in methods:
            pts = sorted((r["shots"], r["metrics"][metric]["mean"]) for r in rows
                         if r["dataset"] == d and r["method"] == m and metric in r["metrics"])
            if pts:
                panels.setdefault(d, {})[m] = ([p[0] for p in pts], [p[1] for p in pts])
                table += [[d, m, k, v] for k, v in pts]
    if len(panels) > 1:  # the average over datasets at each shot count, as the papers' first panel
        avg = {}
        for m in methods:
            ks = sorted({r["shots"] for r in rows if r["method"] == m})
            ys = [statistics.fmean(v for d in panels if m in panels[d] for k2, v in zip(*panels[d][m]) if k2 == k)
                  for k in ks]
            avg[m] = (ks, ys)
        panels = {"Average": avg, **panels}
    return [write_csv(out / f"{name}_shots.csv", ["dataset", "method", "shots", "accuracy"], table),
            lines(out / f"{name}_shots.png", panels, "accuracy against shots", "shots per class", "accuracy (%)",
                  logx=True)]


def _base2new(s: dict, rows: list[dict], methods: list[str], out: Path, name: str) -> list[Path]:
    panels, table = {}, []
    for d in s["datasets"]:
        for k in sorted({r["shots"] for r in rows if r["dataset"] == d}):
            got = {m: r["metrics"] for m in methods if (r := next((x for x in rows if x["dataset"] == d and
                                                                    x["shots"] == k and x["method"] == m), None))}
            if not got:
                continue
            series = {col: [(got[m].get(col) or {}).get("mean") for m in got] for col in ("base", "new", "hm")}
            panels[f"{d}, {k} shots"] = (list(got), series)
            table += [[d, k, m, *[(got[m].get(c) or {}).get("mean") for c in ("base", "new", "hm")]] for m in got]
    return [write_csv(out / f"{name}_b2n.csv", ["dataset", "shots", "method", "base", "new", "hm"], table),
            bars(out / f"{name}_b2n.png", panels, "base-to-new: base, new, HM", "accuracy (%)")]

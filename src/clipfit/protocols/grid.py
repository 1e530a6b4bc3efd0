"""Seeds x methods grids for the few-shot and base-to-new protocols, with mean ± std tables.

Each (method, seed) is a run directory OUT/<method>/seed<S>; a finished one (metrics.json with the needed numbers)
is reused, so an interrupted grid resumes where it stopped. A method written 'X@Y' is trained in two stages: Y
first (or its finished run reused), then X initialised from it (`init_from`), as the LayerNorm tuning paper's
"LN as init". Settings apply to every method that has them (a setting no method has is an error).
"""
from __future__ import annotations

import copy
import statistics
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ..backbone import Backbone
from ..config import TrainConfig
from ..engine.loop import pick_device
from ..engine.run import RunSpec, eval_run, load_run, resolve_configs, train_run
from ..engine.rundir import RunDir
from ..errors import ClipfitError
from ..io import write_json
from ..tuners import METHODS


def harmonic_mean(b: float, n: float) -> float:
    return 2 * b * n / (b + n) if b + n > 0 else 0.0


def mean_std(xs: list[float | None]) -> tuple[float | None, float | None]:
    if any(x is None for x in xs):  # not applicable (a class-specific method on new classes)
        return None, None
    return (statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def settings_for(method: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The grid's settings that `method` (or, for 'X@Y', X) has."""
    entry = METHODS.get(method.partition("@")[0])
    known = {f.name for f in fields(entry.cls.Config)} | {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in settings.items() if k in known}


def check_grid_settings(methods: list[str], settings: dict[str, Any]) -> None:
    """A one-line error for a setting that no method of the grid has (a typo would otherwise be ignored)."""
    used = {k for m in methods for k in settings_for(m, settings)}
    unknown = sorted(set(settings) - used)
    if unknown:
        raise ClipfitError(f"setting {unknown[0]}: none of the methods {', '.join(methods)} has it")


def run_grid(protocol: str, spec: RunSpec, methods: list[str], seeds: list[int], out: str | Path,
             progress: bool = True, echo=print) -> dict:
    """Train/evaluate every method on every seed; returns {method: {metric: [values per seed]}} plus a table."""
    if protocol not in ("fewshot", "base2new"):
        raise ClipfitError(f"unknown protocol {protocol!r}")
    for m in methods:
        for part in m.split("@"):
            METHODS.get(part)
    check_grid_settings(methods, spec.settings)
    out = Path(out)
    device = pick_device(spec.device)
    pristine = Backbone.from_pretrained(spec.model, device=device)
    results: dict[str, dict[str, list[float]]] = {}

    def ensure(method: str, seed: int) -> dict:
        """Metrics of OUT/<method>/seed<S>, training (and evaluating) it unless a finished run is there.
        'X@Y' is method X initialised from the run of method Y with the same seed (two-stage training)."""
        name, _, first = method.partition("@")
        settings = settings_for(method, spec.settings)
        mcfg = resolve_configs(replace(spec, method=name, protocol=protocol, settings=settings))[0]
        agnostic = METHODS.get(name).cls.agnostic_for(mcfg)  # e.g. not for CoOp with a context per class
        run = RunDir(out / method / f"seed{seed}")
        m = run.read_metrics()
        if m is None or "test" not in m or (protocol == "base2new" and agnostic and "new" not in m["test"]):
            if first:
                ensure(first, seed)
                settings["init_from"] = str(out / first / f"seed{seed}")
            s = replace(spec, method=name, seed=seed, protocol=protocol, settings=settings,
                        subsample="base" if protocol == "base2new" else "all")
            resume = run.has_checkpoint  # an interrupted run continues from its last epoch
            m = train_run(s, run.path, overwrite=not resume, resume=resume, progress=progress,
                          backbone=copy.deepcopy(pristine))
            if protocol == "base2new" and agnostic:
                loaded = load_run(run.path, spec.device, backbone=copy.deepcopy(pristine))
                m["test"]["new"] = {k: v for k, v in eval_run(run.path, subsample="new", loaded=loaded,
                                                               progress=progress).items() if k in ("accuracy", "n")}
                run.write_metrics(m)
        return m

    for method in methods:
        res: dict[str, list[float]] = {}
        for seed in seeds:
            m = ensure(method, seed)
            if protocol == "base2new":
                b = m["test"]["base"]["accuracy"]
                n = m["test"]["new"]["accuracy"] if "new" in m["test"] else None  # class-specific: no "new" classes
                vals = {"base": b, "new": n, "hm": harmonic_mean(b, n) if n is not None else None}
            else:
                vals = {"accuracy": m["test"]["all"]["accuracy"]}
            for k, v in vals.items():
                res.setdefault(k, []).append(v)
            echo(f"{method} seed {seed}: " + ", ".join(f"{k} " + ("n/a" if v is None else f"{v:.2f}") for k, v in vals.items()))
        results[method] = res
    summary = {"protocol": protocol, "dataset": spec.dataset, "model": spec.model, "shots": spec.shots, "seeds": seeds,
               "results": {m: {k: {"mean": mean_std(v)[0], "std": mean_std(v)[1], "values": v} for k, v in r.items()}
                           for m, r in results.items()}}
    write_json(out / "results.json", summary)
    return summary


def format_table(summary: dict) -> str:
    """A plain-text table of mean ± std per method."""
    res = summary["results"]
    cols = list(next(iter(res.values())).keys()) if res else []
    head = ["method"] + cols
    def cell(v: dict) -> str:
        if v["mean"] is None:
            return "n/a"
        return f"{v['mean']:.2f}" if len(v["values"]) == 1 else f"{v['mean']:.2f} ± {v['std']:.2f}"

    rows = [[m] + [cell(r[c]) for c in cols] for m, r in res.items()]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths))  # noqa: E731
    title = (f"{summary['protocol']} on {summary['dataset']} ({summary['shots']} shots, seeds "
             f"{' '.join(map(str, summary['seeds']))}; test accuracy %, mean ± std)")
    return "\n".join([title, line(head), line(["-" * w for w in widths]), *map(line, rows)])

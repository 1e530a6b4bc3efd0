"""Seeds x methods grids for the few-shot and base-to-new protocols, with mean ± std tables.

Each (method, seed) is a run directory OUT/<method>/seed<S>; a finished one (metrics.json with the needed numbers)
is reused, so an interrupted grid resumes where it stopped. A method written 'X@Y' is trained in two stages: Y
first (or its finished run reused), then X initialised from it (`init_from`), as seed 003's "LN as init".
"""
from __future__ import annotations

import copy
import statistics
from dataclasses import replace
from pathlib import Path

from ..backbone import Backbone
from ..errors import ClipfitError
from ..io import read_json, write_json
from ..engine.loop import CHECKPOINT, pick_device
from ..engine.run import RunSpec, eval_run, load_run, train_run
from ..methods import METHODS


def harmonic_mean(b: float, n: float) -> float:
    return 2 * b * n / (b + n) if b + n > 0 else 0.0


def mean_std(xs: list[float | None]) -> tuple[float | None, float | None]:
    if any(x is None for x in xs):  # not applicable (a class-specific method on new classes)
        return None, None
    return (statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def run_grid(protocol: str, spec: RunSpec, methods: list[str], seeds: list[int], out: str | Path,
             progress: bool = True, echo=print) -> dict:
    """Train/evaluate every method on every seed; returns {method: {metric: [values per seed]}} plus a table."""
    if protocol not in ("fewshot", "base2new"):
        raise ClipfitError(f"unknown protocol {protocol!r}")
    out = Path(out)
    device = pick_device(spec.device)
    pristine = Backbone.from_pretrained(spec.model, device=device)
    results: dict[str, dict[str, list[float]]] = {}

    def ensure(method: str, seed: int) -> dict:
        """Metrics of OUT/<method>/seed<S>, training (and evaluating) it unless a finished run is there.
        'X@Y' is method X initialised from the run of method Y with the same seed (two-stage training)."""
        name, _, first = method.partition("@")
        agnostic = METHODS.get(name).class_agnostic
        run_dir = out / method / f"seed{seed}"
        m = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").exists() else None
        if m is None or "test" not in m or (protocol == "base2new" and agnostic and "new" not in m["test"]):
            overrides = list(spec.overrides)
            if first:
                ensure(first, seed)
                overrides.append(f"init_from={out / first / f'seed{seed}'}")
            s = replace(spec, method=name, seed=seed, protocol=protocol, overrides=overrides,
                        subsample="base" if protocol == "base2new" else "all")
            resume = (run_dir / CHECKPOINT).exists()  # an interrupted run continues from its last epoch
            m = train_run(s, run_dir, overwrite=not resume, resume=resume, progress=progress,
                          backbone=copy.deepcopy(pristine))
            if protocol == "base2new" and agnostic:
                loaded = load_run(run_dir, spec.device, backbone=copy.deepcopy(pristine))
                m["test"]["new"] = {k: v for k, v in eval_run(run_dir, subsample="new", loaded=loaded,
                                                               progress=progress).items() if k in ("accuracy", "n")}
                write_json(run_dir / "metrics.json", m)
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

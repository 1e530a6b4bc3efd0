"""CoOp's few-shot and base-to-new protocols over datasets x shots x methods x seeds.

Few-shot: train on K images per class, test on the dataset's test split. Base-to-new: train on the base half of the
classes, test on base and on new classes; HM = 2BN/(B+N) of the mean base and mean new accuracies (the papers
compute their rows that way; per-seed HMs stay in results.json). One dataset and one shot count print one row per
method (mean ± std over seeds); several print the papers' layout, one row per dataset (base-to-new: Base / New / HM
rows, CLIPFit Table 1) with the Average row, methods as columns. A method 'X@Y' is X initialised from Y's run of
the same seed (the LayerNorm-tuning paper's "LN as initialization").
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import ClipfitError
from .cells import Cell, GridArgs, check_datasets, headline_metric, run_cells
from .jobs import Eval, check_methods, class_agnostic, make_job
from .results import (
    average_label,
    fmt,
    harmonic_mean,
    mean_or_none,
    missing_note,
    render,
    summarise,
    value,
    write_results,
)

PROTOCOLS = ("fewshot", "base2new")


def run_grid(protocol: str, args: GridArgs, datasets: list[str], shots: list[int]) -> dict:
    """Every method on every dataset, shot count and seed; returns results.json's content."""
    if protocol not in PROTOCOLS:
        raise ClipfitError(f"unknown protocol {protocol!r}")
    check_methods(args.methods, args.base.settings, args.base.model)
    if not shots or any(k < 0 for k in shots):
        raise ClipfitError(f"--shots {shots}: give shot counts >= 0 (0: every image)")
    tasks, missing = check_datasets(datasets, args.base.root, args.skip_missing, dry_run=args.dry_run)
    subsample = "base" if protocol == "base2new" else "all"
    cells = []
    for d in tasks:
        for k in shots:
            for method in args.methods:
                for seed in args.seeds:
                    job = make_job(args.base, args.out, d, method, k, seed, protocol, subsample)
                    if protocol == "base2new" and class_agnostic(job.spec):  # class-specific: no new classes
                        job = replace(job, evals=(Eval("new", subsample="new"),))
                    cells.append(Cell({"dataset": d, "shots": k, "method": method}, seed, job))
    primary = {d: headline_metric(t) for d, t in tasks.items()}

    def values(c: Cell, m: dict) -> dict[str, Any]:
        metric = primary[c.labels["dataset"]]
        if protocol == "fewshot":
            res = m["test"]["all"]
            return {metric: res[metric], **{k: v for k, v in res.items() if k not in (metric, "n")}}
        b = m["test"]["base"][metric]
        n = m["test"]["new"][metric] if "new" in m["test"] else None  # class-specific: no new classes
        return {"base": b, "new": n, "hm": harmonic_mean(b, n)}

    rows = summarise(cells, run_cells(cells, values, args.progress, args.echo, args.executor))
    if protocol == "base2new":
        hm_of_means(rows)
    summary = {**args.header(protocol), "datasets": datasets, "shots": shots, "missing": missing,
               "primary_metric": primary, "rows": rows}
    # one dataset and one shot count: also the v0.1 shape, {method: {metric: {mean, std, values}}}
    if len(datasets) == 1 and len(shots) == 1:
        summary.update(dataset=datasets[0], results={r["method"]: r["metrics"] for r in rows})
    return write_results(args.out, summary)


def hm_of_means(rows: list[dict]) -> list[dict]:
    """Each row's HM := the harmonic mean of its mean base and mean new accuracies, as the papers compute a row (the
    per-seed HMs stay in "values"; their mean would be another, smaller number)."""
    for r in rows:
        mt = r["metrics"]
        mt["hm"] = {"mean": harmonic_mean(mt["base"]["mean"], mt["new"]["mean"]), "std": None,
                    "values": mt["hm"]["values"]}
    return rows


def _title(s: dict, what: str) -> str:
    seeds = " ".join(map(str, s["seeds"]))
    return f"{s['protocol']} on {what} (seeds {seeds}; test accuracy %, {{}})"


def fewshot_table(s: dict) -> str:
    rows = s["rows"]
    if len(s["datasets"]) == 1 and len(s["shots"]) == 1 and not s["missing"]:
        d, k = s["datasets"][0], s["shots"][0]
        cols = list(rows[0]["metrics"]) if rows else []
        body = [[r["method"]] + [fmt(r["metrics"][c]["mean"], _std(r["metrics"][c])) for c in cols] for r in rows]
        title = f"fewshot on {d} ({k} shots, seeds {' '.join(map(str, s['seeds']))}; test %, mean ± std)"
        return render(title, ["method"] + cols, body)
    out = []
    for k in s["shots"]:
        body = []
        present = [d for d in s["datasets"] if d not in s["missing"]]
        avg = [mean_or_none(value(rows, s["primary_metric"][d], dataset=d, shots=k, method=m) for d in present)
               for m in s["methods"]]
        body.append([average_label(len(present), len(s["datasets"]))] + [fmt(x) for x in avg])
        for d in s["datasets"]:
            if d in s["missing"]:
                body.append([d] + ["missing"] * len(s["methods"]))
                continue
            metric = s["primary_metric"][d]
            tag = "" if metric == "accuracy" else f" ({metric})"
            body.append([d + tag] + [fmt(value(rows, metric, dataset=d, shots=k, method=m)) for m in s["methods"]])
        title = _title(s, f"{len(s['datasets'])} datasets, {k} shots").format("mean over seeds")
        out.append(render(title, ["dataset"] + s["methods"], body, missing_note(s["missing"])))
    if len(s["shots"]) > 1:  # CLIPFit Table 2: the average over datasets by shots
        present = [d for d in s["datasets"] if d not in s["missing"]]
        body = [[m] + [fmt(mean_or_none(value(rows, s["primary_metric"][d], dataset=d, shots=k, method=m)
                                        for d in present)) for k in s["shots"]] for m in s["methods"]]
        title = (f"fewshot: {average_label(len(present), len(s['datasets']))} over datasets by shots (CLIPFit Table 2 "
                 f"layout; seeds {' '.join(map(str, s['seeds']))}; test %, mean over datasets and seeds)")
        out.append(render(title, ["method"] + [f"{k} shots" for k in s["shots"]], body))
    return "\n\n".join(out)


def _std(v: dict) -> float | None:
    return v["std"] if v.get("std") is not None and len(v.get("values", [])) > 1 else None


def base2new_table(s: dict) -> str:
    rows = s["rows"]
    if len(s["datasets"]) == 1 and len(s["shots"]) == 1 and not s["missing"]:
        d, k = s["datasets"][0], s["shots"][0]
        body = [[r["method"], fmt(r["metrics"]["base"]["mean"], _std(r["metrics"]["base"])),
                 fmt(r["metrics"]["new"]["mean"], _std(r["metrics"]["new"])), fmt(r["metrics"]["hm"]["mean"])]
                for r in rows]
        title = (f"base2new on {d} ({k} shots, seeds {' '.join(map(str, s['seeds']))}; test %, mean ± std; "
                 "HM of the means)")
        return render(title, ["method", "base", "new", "hm"], body)
    out = []
    for k in s["shots"]:
        present = [d for d in s["datasets"] if d not in s["missing"]]
        body = []
        # CLIPFit Table 1: the Average block first; its HM is the HM of the average base and new accuracies
        means = {c: [mean_or_none(value(rows, c, dataset=d, shots=k, method=m) for d in present) for m in s["methods"]]
                 for c in ("base", "new")}
        hm = [harmonic_mean(b, n) for b, n in zip(means["base"], means["new"])]
        label = average_label(len(present), len(s["datasets"]))
        body += [[label, "Base"] + [fmt(x) for x in means["base"]], ["", "New"] + [fmt(x) for x in means["new"]],
                 ["", "HM"] + [fmt(x) for x in hm]]
        for d in s["datasets"]:
            if d in s["missing"]:
                body.append([d, "missing"] + [""] * len(s["methods"]))
                continue
            for i, (c, name) in enumerate((("base", "Base"), ("new", "New"), ("hm", "HM"))):
                body.append([d if i == 0 else "", name] + [fmt(value(rows, c, dataset=d, shots=k, method=m))
                                                           for m in s["methods"]])
        title = _title(s, f"{len(s['datasets'])} datasets, {k} shots").format("mean over seeds; HM of the means")
        out.append(render(title, ["dataset", ""] + s["methods"], body, missing_note(s["missing"])))
    return "\n\n".join(out)

"""Episodic few-shot, as the LayerNorm-tuning paper runs it (Sec. 4.5, Tables 3-4: Mini-ImageNet and CUB).

Stage one adapts the model on the base classes (the training split's classes) like any other run: every base image
by default (`base_shots=0`), the paper's recipe (100 epochs). The validation split's classes are other classes,
so stage one has no validation set and keeps its last epoch. Stage two is the Classifier-Baseline on the test
split's (novel) classes (`classifier_baseline`), recorded in the run's metrics.json. Reported: mean accuracy over
the episodes of every seed, ± 1.96 s/sqrt(n) (95% confidence interval).
"""
from __future__ import annotations

from typing import Any

from ..errors import ClipfitError
from .cells import Cell, GridArgs, check_datasets, run_cells
from .classifier_baseline import Episodes
from .jobs import Eval, check_methods, make_job
from .results import find, fmt, render, summarise, write_results


def run_episodic(args: GridArgs, dataset: str, *, ways: int, shots: list[int], queries: int, episodes: int,
                 base_shots: int) -> dict:
    check_methods(args.methods, args.base.settings, args.base.model)
    if ways < 2 or queries < 1 or episodes < 1 or not shots or min(shots) < 1:
        raise ClipfitError("episodes need ways >= 2, shots >= 1, queries >= 1 and episodes >= 1")
    tasks, missing = check_datasets([dataset], args.base.root, dry_run=args.dry_run)
    task = tasks[dataset]
    base = {it.label for it in task.train}
    novel = {it.label for it in task.test}
    if (not base or base & novel) and dataset not in missing:
        raise ClipfitError(f"dataset {dataset} is not an episodic set: its training and test splits must hold disjoint "
                           f"classes (base and novel), found {len(base & novel)} shared")
    cells = []
    for method in args.methods:
        for seed in args.seeds:
            evals = tuple(Eval(e.key, episodes=e) for e in
                          (Episodes(ways, k, queries, episodes, seed) for k in shots))
            job = make_job(args.base, args.out, dataset, method, base_shots, seed, "episodic", "train", evals,
                           test=False)
            cells.extend(Cell({"method": method, "shots": k}, seed, job) for k in shots)

    def values(c: Cell, m: dict) -> dict[str, Any]:
        key = Episodes(ways, c.labels["shots"], queries, episodes, c.seed).key
        return {"accuracy": m["test"][key]["episodes"]}

    rows = summarise(cells, run_cells(cells, values, args.progress, args.echo, args.executor))
    summary = {**args.header("episodic"), "dataset": dataset, "ways": ways, "shots": shots, "queries": queries,
               "episodes": episodes, "base_shots": base_shots, "base_classes": len(base), "novel_classes": len(novel),
               "rows": rows}
    return write_results(args.out, summary)


def episodic_table(s: dict) -> str:
    body = []
    for m in s["methods"]:
        row = [m]
        for k in s["shots"]:
            r = find(s["rows"], method=m, shots=k)
            acc = r["metrics"]["accuracy"] if r else None
            row.append(fmt(acc["mean"], ci=acc["ci95"]) if acc else "n/a")
        body.append(row)
    base = "every base image" if s["base_shots"] <= 0 else f"{s['base_shots']} shots per base class"
    title = (f"episodic on {s['dataset']}: stage one on {s['base_classes']} base classes ({base}), Classifier-Baseline "
             f"on {s['novel_classes']} novel classes; {s['episodes']} episodes x seeds {' '.join(map(str, s['seeds']))}, "
             f"{s['queries']} queries (accuracy %, mean ± 95% CI)")
    return render(title, ["method"] + [f"{s['ways']}-way {k}-shot" for k in s["shots"]], body)

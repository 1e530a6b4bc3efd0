"""Episodic few-shot, as the LayerNorm-tuning paper runs it (Sec. 4.5, Tables 3-4: Mini-ImageNet and CUB).

Stage one adapts the model on the base classes (the training split's classes) like any other run: every base image
by default (`base_shots=0`), the paper's recipe (100 epochs). The validation split's classes are other classes,
so stage one has no validation set and keeps its last epoch. Stage two is the Classifier-Baseline (Chen et al.,
"A New Meta-Baseline for Few-Shot Learning"): in each N-way K-shot episode on the test split's (novel) classes,
a class's prototype is the mean of its K support embeddings, and each of the N x Q queries goes to the prototype
of highest cosine similarity. The embedding is the one the adapted method classifies with
(`Method.image_features`: CLIP's projected image feature; a linear probe's pooled feature; LLU's updated one).

Episodes are drawn from the seed alone (NumPy PCG64 seeded with (seed, N, K, Q)), so every method meets the same
episodes. Reported: mean accuracy over the episodes of every seed, ± 1.96 s/sqrt(n) (95% confidence interval).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.catalogue import load_task
from ..errors import ClipfitError
from .core import (
    Cell,
    Episodes,
    Eval,
    GridArgs,
    check_datasets,
    check_methods,
    fmt,
    layout,
    make_job,
    render,
    run_cells,
    summarise,
    write_results,
)


def draw_episodes(labels: np.ndarray, spec: Episodes) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(support indices [N*K], query indices [N*Q], episode labels of the queries [N*Q]) for each episode, drawn
    from `spec.seed` alone; supports and queries of a class are disjoint."""
    rng = np.random.default_rng([spec.seed, spec.ways, spec.shots, spec.queries])
    classes = np.unique(labels)
    by_class = {c: np.flatnonzero(labels == c) for c in classes}
    need = spec.shots + spec.queries
    small = [int(c) for c in classes if len(by_class[c]) < need]
    if len(classes) < spec.ways or small:
        raise ClipfitError(f"episodes of {spec.ways} ways x ({spec.shots} shots + {spec.queries} queries) need "
                           f"{spec.ways} classes with {need} test images each; the test split has {len(classes)} classes"
                           + (f", class {small[0]} has {len(by_class[small[0]])}" if small else ""))
    out = []
    for _ in range(spec.episodes):
        chosen = rng.choice(classes, spec.ways, replace=False)
        support, query, qlab = [], [], []
        for j, c in enumerate(chosen):
            idx = rng.choice(by_class[c], need, replace=False)
            support.append(idx[:spec.shots])
            query.append(idx[spec.shots:])
            qlab.append(np.full(spec.queries, j))
        out.append((np.concatenate(support), np.concatenate(query), np.concatenate(qlab)))
    return out


def episode_accuracies(emb: torch.Tensor, labels: np.ndarray, spec: Episodes) -> list[float]:
    """Classifier-Baseline accuracy (%) of each episode on embeddings `emb` [n, D] of the items with `labels`."""
    emb = F.normalize(emb.float(), dim=-1)
    accs = []
    for support, query, qlab in draw_episodes(labels, spec):
        protos = F.normalize(emb[support].view(spec.ways, spec.shots, -1).mean(1), dim=-1)
        pred = (emb[query] @ protos.t()).argmax(-1).numpy()
        accs.append(float((pred == qlab).mean()) * 100.0)
    return accs


@torch.no_grad()
def embed(loaded, items, task, progress: bool) -> torch.Tensor:
    """The adapted method's image embeddings of `items` (eval transform), [n, D] on the CPU."""
    from ..engine.loop import autocast, eval_loader

    m, cfg = loaded.method, loaded.train_config
    m.eval()
    out = []
    with autocast(loaded.device, cfg.precision):
        for x, _ in eval_loader(items, task, m, cfg.eval_batch_size, cfg.num_workers):
            out.append(m.image_features(x.to(loaded.device)).float().cpu())
    return torch.cat(out)


def evaluate_episodes(loaded, spec: Episodes, progress: bool = False) -> dict[str, Any]:
    """Stage two on the test split (novel classes) of the run's dataset: {"accuracy", "ci95", "episodes": [...]}."""
    cfg = loaded.config
    task = load_task(cfg["dataset"], cfg.get("root"))
    if not task.test:
        raise ClipfitError(f"dataset {cfg['dataset']} has no test split to draw episodes from")
    labels = np.array([it.label for it in task.test])
    accs = episode_accuracies(embed(loaded, task.test, task, progress), labels, spec)
    a = np.asarray(accs)
    ci = 1.96 * a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else 0.0
    return {"accuracy": float(a.mean()), "ci95": float(ci), "episodes": [round(x, 4) for x in accs]}


def run_episodic(args: GridArgs, dataset: str, ways: int, shots: list[int], queries: int, episodes: int,
                 base_shots: int) -> dict:
    check_methods(args.methods, args.base.settings)
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


@layout("episodic")
def episodic_table(s: dict) -> str:
    from .core import find

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

"""Stage two of episodic few-shot: the Classifier-Baseline (Chen et al., "A New Meta-Baseline for Few-Shot
Learning") on a trained run. In each N-way K-shot episode on the test split's (novel) classes, a class's prototype is
the mean of its K support embeddings, and each of the N x Q queries goes to the prototype of highest cosine
similarity. The embedding is the one the adapted method classifies with (`Method.image_features`: CLIP's projected
image feature; a linear probe's pooled feature; LLU's updated one).

Episodes are drawn from the seed alone (NumPy PCG64 seeded with (seed, N, K, Q)), so every method meets the same
episodes. Reported: mean accuracy over the episodes, ± 1.96 s/sqrt(n) (95% confidence interval).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.catalogue import load_task
from ..engine.loop import autocast, eval_loader
from ..errors import ClipfitError


@dataclass(frozen=True)
class Episodes:
    """An episodic evaluation (N-way K-shot, Q queries per class, E episodes drawn from `seed`)."""

    ways: int
    shots: int
    queries: int
    episodes: int
    seed: int

    @property
    def key(self) -> str:
        return f"episodes:{self.ways}way-{self.shots}shot-{self.queries}query-{self.episodes}x-seed{self.seed}"


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

"""What tuning did to a run's features: t-SNE of the test images' features, zero-shot model beside the tuned one
(`tsne`, CLIPFit Figure 5); how far the class text features moved from zero-shot (`text_drift`); test accuracy with
each encoder tuned or zero-shot (`tower_swaps`: which tower forgot)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backbone import Backbone
from ..data.catalogue import load_task
from ..data.sampling import subsample_classes
from ..engine.loop import eval_loader
from ..engine.run import load_run
from ..errors import ClipfitError
from ..io import write_csv
from ..method import build_method
from ..plots import scatter


def _zero_shot_of(run):
    """The zero-shot model a loaded run started from: same model, classes and templates, nothing tuned."""
    cfg = run.config
    return build_method("zeroshot", Backbone.from_pretrained(cfg["model"], device=run.device), cfg["classnames"],
                        cfg["templates"]).to(run.device).eval()


def tsne(run_dir: Path, out: Path, name: str, max_points: int = 400, device: str | None = None) -> list[Path]:
    """t-SNE of the test images' features (at most `max_points`, an even draw over the split), zero-shot model
    beside the tuned run; the silhouette of each embedding by class says which separates the classes better."""
    from sklearn.manifold import TSNE  # scikit-learn: an optional extra (clipfit[data]), for t-SNE only
    from sklearn.metrics import silhouette_score

    run = load_run(run_dir, device)
    cfg = run.config
    task = subsample_classes(load_task(cfg["dataset"], cfg.get("root")), cfg["subsample"])
    items = task.test or task.val or task.train
    if not items:
        raise ClipfitError(f"{run_dir}: its dataset has no images to embed")
    step = max(1, len(items) // max_points)
    items = items[::step][:max_points]
    zs = _zero_shot_of(run)
    panels, rows, scores = {}, [], {}
    for label, method in (("zero-shot CLIP", zs), (f"{cfg['method']} ({name})", run.method)):
        feats, ys = [], []
        with torch.no_grad():
            for x, y in eval_loader(items, task, method, 256):
                feats.append(method.image_features(x.to(run.device)).float().cpu())
                ys.append(y)
        f, y = torch.cat(feats).numpy(), torch.cat(ys).numpy()
        xy = TSNE(2, perplexity=min(30.0, (len(f) - 1) / 3), init="pca", random_state=0).fit_transform(f)
        panels[label] = (xy.tolist(), y.tolist())
        rows += [[label, float(a), float(b), int(c)] for (a, b), c in zip(xy, y)]
        scores[label] = float(silhouette_score(f, y, metric="cosine")) if len(np.unique(y)) > 1 else None
    stem = f"tsne_{name}".replace("/", "_")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps({"run": str(run_dir), "points": len(items),
                                                  "silhouette_cosine": scores}, indent=1), encoding="utf-8")
    return [write_csv(out / f"{stem}.csv", ["model", "x", "y", "label"], rows), out / f"{stem}.json",
            scatter(out / f"{stem}.png", panels, f"t-SNE of image features, {cfg['dataset']}")]


def _halves(cfg: dict) -> dict[str, Any]:
    """The classes a run can be scored on: {half: Task or None} -- its own (None: not loaded here) and, for a
    base-to-new run, the dataset's other half (its Task) when the dataset is at hand."""
    halves: dict[str, Any] = {cfg.get("subsample") or "all": None}
    other = {"base": "new", "new": "base"}.get(cfg.get("subsample") or "")
    if other:
        try:
            halves[other] = subsample_classes(load_task(cfg["dataset"], cfg.get("root")), other)
        except ClipfitError:
            pass  # the dataset is not at hand: the run's own classes only
    return halves


def text_drift(runs: dict[str, Path], out: Path, device: str | None = None) -> list[Path]:
    """How far each run's class text features moved from the zero-shot model's (same model, classes and templates):
    mean and largest 1 - cosine over its classes, and over the dataset's other half when the run trained on one
    (base-to-new: the new classes' prompts it never saw). What KgCoOp's and CLIPFit's regularisers hold down.

    The change d_k = w_k - w_k^zs is also split in two: `common_share`, the share of sum |d_k|^2 that is the same
    for every class (mean_k d_k), which moves every logit of an image alike and so barely changes a prediction;
    and `specific_rel`, the RMS of the rest (d_k - mean d) over the RMS spread of the zero-shot features around
    their mean, the part that can reorder classes."""
    rows = []
    for name, run_dir in runs.items():
        run = load_run(run_dir, device)
        cfg = run.config
        zs = _zero_shot_of(run)
        for half, task in _halves(cfg).items():
            classes = task.classnames if task is not None else cfg["classnames"]
            with torch.no_grad():
                feats = []
                for m in (zs, run.method):
                    m.set_classes(classes)
                    feats.append(m.text_features().float())
            d = 1.0 - (feats[0] * feats[1]).sum(-1)
            common, specific = _drift_parts(feats[0], feats[1])
            rows.append([name, cfg["method"], half, len(classes), f"{d.mean().item():.6f}", f"{d.max().item():.6f}",
                         f"{common:.4f}", f"{specific:.4f}"])
    return [write_csv(out / "text_drift.csv", ["run", "method", "classes", "n", "mean_1_minus_cos",
                                               "max_1_minus_cos", "common_share", "specific_rel"], rows)]


def tower_swaps(runs: dict[str, Path], out: Path, device: str | None = None) -> list[Path]:
    """Which encoder's tuning moved each run's accuracy: test accuracy on its classes (and, base-to-new, on the
    other half's) with each tower tuned or zero-shot -- `both` (the run itself), `image` (tuned image encoder,
    zero-shot class text features), `text` (zero-shot image features, tuned text), `zero_shot` (neither). On new
    classes, `image` and `text` say which tower carries what tuning cost them (CLIPFit's KD anchors only the text).
    For methods whose logits are image features x text features (not CoCoOp, Tip-Adapter, the probes)."""
    rows = []
    for name, run_dir in runs.items():
        run = load_run(run_dir, device)
        cfg = run.config
        if not run.method.feature_logits:
            raise ClipfitError(f"--towers: {run_dir} is a {cfg['method']} run, whose logits are not image features x "
                               "text features; leave it out (tower swaps apply to clipfit, coop, layernorm, ...)")
        zs = _zero_shot_of(run)
        for half, task in _halves(cfg).items():
            if task is None:
                task = subsample_classes(load_task(cfg["dataset"], cfg.get("root")), half)
            if not task.test:
                continue
            models = {"tuned": run.method, "zero_shot": zs}
            feats: dict[str, list] = {tag: [] for tag in models}
            labels = []
            with torch.no_grad():
                for m in models.values():
                    m.set_classes(task.classnames)
                text = {tag: m.text_features().float() for tag, m in models.items()}
                for x, y in eval_loader(task.test, task, zs, 256):  # each image decoded once, encoded by both
                    for tag, m in models.items():
                        feats[tag].append(m.image_features(x.to(run.device)).float())
                    labels.append(y)
            image = {tag: torch.cat(f) for tag, f in feats.items()}
            y = torch.cat(labels).to(run.device)
            pairs = (("tuned", "tuned"), ("tuned", "zero_shot"), ("zero_shot", "tuned"), ("zero_shot", "zero_shot"))
            rows.append([name, cfg["method"], half, len(y)] + [
                f"{100.0 * float((image[i] @ text[t].t()).argmax(1).eq(y).float().mean()):.4f}" for i, t in pairs])
    return [write_csv(out / "towers.csv", ["run", "method", "classes", "n", "both", "image", "text", "zero_shot"],
                      rows)]


def _drift_parts(zero_shot, tuned) -> tuple[float, float]:
    """(share of the squared change common to every class, RMS class-specific change / RMS zero-shot spread)."""
    delta = tuned - zero_shot
    total = float(delta.pow(2).sum())
    if total == 0.0:
        return 0.0, 0.0
    common = delta.mean(0, keepdim=True)
    spread = float((zero_shot - zero_shot.mean(0, keepdim=True)).pow(2).sum())
    specific = float((delta - common).pow(2).sum())
    return float(common.pow(2).sum()) * len(delta) / total, (specific / spread) ** 0.5 if spread else 0.0

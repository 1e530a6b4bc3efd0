"""`clipfit analyze RUN [RUN ...] --out DIR`: each analysis of finished runs and protocol grids as a PNG (headless
matplotlib) with its data beside it as CSV.

Of run directories (several runs are drawn together, one line each, e.g. CLIPFit with and without its regulariser):
- curves.png/.csv: every number of the per-epoch history (loss and its parts, learning rate, validation accuracy);
- change.png, grads.png, layers.csv: what `record=change,grads` recorded, per layer of each series (CLIPFit Figures 3,
  4, 7-11 left);
- steps.png/.csv: what `record=steps` recorded, the change of chosen layers at every step (CLIPFit Figure 11 right);
- text_drift.csv (`--drift`): how far each run's class text features moved from zero-shot (1 - cosine), on its
  own classes and, for a base-to-new run, on the new classes' prompts too;
- towers.csv (`--towers`): test accuracy with each encoder tuned or zero-shot (tuned image + zero-shot text and the
  reverse), on the run's classes and, for a base-to-new run, on the other half's: which tower forgot;
- tsne.png/.csv/.json (`--tsne`): t-SNE of the test images' features, zero-shot model beside the tuned one (CLIPFit
  Figure 5), with each embedding's silhouette score by class in the JSON.
Of a protocol's results.json (or its folder): fewshot grids as accuracy against shots per method (the CoOp-style
curve), base2new grids as base / new / HM bars per method.
"""
from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ClipfitError


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def labels_for(paths: Sequence[Path]) -> list[str]:
    """Short distinct names for runs: the folder name, with as many of its parents' as it takes to tell them apart."""
    paths = [Path(p).resolve() for p in paths]
    for depth in range(1, max((len(p.parts) for p in paths), default=1) + 1):
        names = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


# -- of runs ---------------------------------------------------------------------------------------------------------


def _record(run) -> dict | None:
    from .engine.record import RECORD_JSON

    return json.loads(run.read_file(RECORD_JSON)) if run.file(RECORD_JSON).exists() else None


def curves(runs: dict[str, Any], out: Path) -> list[Path]:
    from .plots import lines

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
    from .engine.record import layer_table
    from .plots import lines

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
    from .method.base import parse_layers
    from .plots import lines

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


def _zero_shot_of(run):
    """The zero-shot model a loaded run started from: same model, classes and templates, nothing tuned."""
    from .backbone import Backbone
    from .method import build_method

    cfg = run.config
    return build_method("zeroshot", Backbone.from_pretrained(cfg["model"], device=run.device), cfg["classnames"],
                        cfg["templates"]).to(run.device).eval()


def tsne(run_dir: Path, out: Path, name: str, max_points: int = 400, device: str | None = None) -> list[Path]:
    """t-SNE of the test images' features (at most `max_points`, an even draw over the split), zero-shot model
    beside the tuned run; the silhouette of each embedding by class says which separates the classes better."""
    import numpy as np
    import torch
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score

    from .data.catalogue import load_task
    from .data.sampling import subsample_classes
    from .engine.loop import eval_loader
    from .engine.run import load_run
    from .plots import scatter

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
    from .data.catalogue import load_task
    from .data.sampling import subsample_classes

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
    import torch

    from .engine.run import load_run

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
    import torch

    from .data.catalogue import load_task
    from .data.sampling import subsample_classes
    from .engine.loop import eval_loader
    from .engine.run import load_run

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


# -- of protocol grids -----------------------------------------------------------------------------------------------


def grid_figures(results: Path, out: Path, name: str) -> list[Path]:
    from .plots import bars, lines

    s = json.loads(results.read_text(encoding="utf-8"))
    proto, rows = s.get("protocol"), s.get("rows", [])
    methods = list(dict.fromkeys(r["method"] for r in rows))
    if proto == "fewshot":
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
    if proto == "base2new":
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
    raise ClipfitError(f"{results}: analyze draws fewshot and base2new grids, not {proto!r}")


# -- the command ----------------------------------------------------------------------------------------------------


def analyze(paths: Sequence[str | Path], out: str | Path, tsne_points: int = 0, layers: str = "1",
            device: str | None = None, drift: bool = False, towers: bool = False) -> list[Path]:
    """Every analysis the given runs and grids allow, written under `out`; returns the files written."""
    from .engine.rundir import RunDir

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs, grids = [], []
    for p in map(Path, paths):
        results = p if p.name == "results.json" else p / "results.json"
        if results.is_file():
            grids.append(results)
        elif RunDir(p).is_run:
            RunDir(p).require_trained()
            runs.append(p)
        else:
            raise ClipfitError(f"{p} is neither a run directory nor a protocol's results.json; give the --out of "
                               "`clipfit train` or of a protocol command")
    named = dict(zip(labels_for(runs), (RunDir(p) for p in runs)))
    files = curves(named, out) + layer_figures(named, out) + step_figure(named, out, layers)
    for name, path in zip(labels_for([g.parent for g in grids]), grids):
        files += grid_figures(path, out, name.replace("/", "_"))
    if tsne_points:
        for name, p in zip(named, runs):
            files += tsne(p, out, name, tsne_points, device)
    if drift and runs:
        files += text_drift(dict(zip(named, runs)), out, device)
    if towers and runs:
        files += tower_swaps(dict(zip(named, runs)), out, device)
    return files

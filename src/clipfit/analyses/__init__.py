"""`clipfit analyze RUN [RUN ...] --out DIR` (`analyze`): each analysis of finished runs and protocol grids as a PNG
(headless matplotlib) with its data beside it as CSV.

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

The modules: `records` (what runs recorded as they trained), `features` (t-SNE, text drift, tower swaps), `grids`
(protocol grids), `timing` (step time of methods side by side, for the papers' efficiency figures).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..engine.rundir import RunDir
from ..errors import ClipfitError
from .features import text_drift, tower_swaps, tsne
from .grids import grid_figures
from .records import curves, layer_figures, step_figure


def labels_for(paths: Sequence[Path]) -> list[str]:
    """Short distinct names for runs: the folder name, with as many of its parents' as it takes to tell them apart."""
    paths = [Path(p).resolve() for p in paths]
    for depth in range(1, max((len(p.parts) for p in paths), default=1) + 1):
        names = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def analyze(paths: Sequence[str | Path], out: str | Path, tsne_points: int = 0, layers: str = "1",
            device: str | None = None, drift: bool = False, towers: bool = False) -> list[Path]:
    """Every analysis the given runs and grids allow, written under `out`; returns the files written."""
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

"""The papers' figures that are analyses rather than tables (`clipfit paper run NAME` for them):

- "layers" (CLIPFit Figures 3, 4, 7-11): train the entry's variants (CLIPFit, and CLIPFit without its regulariser)
  with `record=change,grads,steps` on one dataset, one seed, and draw per-layer change, squared gradient sums or the
  change at every step (`clipfit.analyses`);
- "tsne" (CLIPFit Figure 5): train CLIPFit, embed the test images zero-shot and tuned with t-SNE;
- "sweep" (CLIPFit Figure 6, the LayerNorm paper's Figure 7): the entry's protocol call once per value of a setting
  (beta; last_blocks), each in OUT/<protocol>-<setting><value>/ (reused), and the average metric against the value;
- "timing" (LLU Figure 3): seconds of one training step (forward, backward, update) against the batch size, every
  method measured side by side in this one process on the same images.

Runs of "layers" and "tsne" live in OUT/analyses/<dataset>/<shots>shots/<variant>/seed<seed>/ and are reused by
every entry that needs them (Figures 3, 4, 8 and 11 share DTD's; 5, 7, 9 and 10 EuroSAT's).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..analyses.timing import measure_steps  # noqa: F401  (run.py reads it from here)
from .registry import AVERAGE, PAPERS, STAND_INS, Entry

RECORD = "change,grads,steps"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def train_variants(entry: Entry, out: Path, model: str, root: str | None, seed: int, stand_ins: bool,
                   device: str | None, progress: bool, echo: Callable[[str], None],
                   settings: dict[str, Any]) -> tuple[dict[str, Path], str]:
    """The entry's variants trained (or reused) with recording on; (variant -> run dir, dataset used)."""
    from .. import api
    from ..engine.rundir import RunDir

    args = entry.call.args
    dataset = STAND_INS.get(args["dataset"], args["dataset"]) if stand_ins else args["dataset"]
    shots = args.get("shots", 16)
    runs = {}
    for label, variant in args["variants"].items():
        run = out / "analyses" / dataset / f"{shots}shots" / _slug(label) / f"seed{seed}"
        if not RunDir(run).is_finished:
            echo(f"{entry.name}: training {label} on {dataset}, {shots} shots, seed {seed}")
            api.train(model, dataset=dataset, out=run, method=entry.methods[0] if entry.methods else "clipfit",
                      shots=shots, seed=seed, root=root, protocol=args.get("protocol", "fewshot"), device=device,
                      overwrite=True, progress=progress, **{**settings, **variant, "record": RECORD})
        runs[label] = run
    return runs, dataset


def _select(runs: dict[str, Path], series: str | None) -> dict[str, Any]:
    from ..engine.rundir import RunDir

    return {label: _Filtered(RunDir(p), series) for label, p in runs.items()}


class _Filtered:
    """A run directory whose record.json shows only the series whose name starts with `series` (text / image)."""

    def __init__(self, run, series: str | None):
        self.run, self.series = run, series

    def file(self, name: str) -> Path:
        return self.run.file(name)

    def read_metrics(self):
        return self.run.read_metrics()

    def read_file(self, name: str) -> bytes:
        data = self.run.read_file(name)
        if not self.series or not name.endswith(".json"):
            return data
        rec = json.loads(data)
        rec["series"] = {s: n for s, n in rec["series"].items() if s.startswith(self.series)}
        return json.dumps(rec).encode()


def run_layers(entry: Entry, runs: dict[str, Path], figures: Path, base: str) -> list[Path]:
    from .. import analyses

    args = entry.call.args
    view = _select(runs, args.get("series"))
    work = figures / base
    files = analyses.layer_figures(view, work)
    if "steps" in args.get("draw", ()):
        files += analyses.step_figure(view, work, args.get("layers", "1"))
    first = {"change": "change.png", "grads": "grads.png", "steps": "steps.png"}[args.get("draw", ("change",))[0]]
    main = figures / f"{base}.png"
    main.write_bytes((work / first).read_bytes())
    return [main, *files]


def run_sweep(entry: Entry, plan_for: Callable[[Entry], Any], call: Callable[..., dict], out: Path,
              settings: dict[str, Any], echo: Callable[[str], None]) -> tuple[dict, list[list[Any]], list[str]]:
    """The entry's protocol call for each value of its swept setting: ({shots: {method: (values, metric)}}, CSV
    rows, notes)."""
    from .run import Ours

    key = entry.sweep[0]
    plan = plan_for(entry)
    values, notes = sweep_values(entry, plan.model)
    metric = "hm" if plan.protocol == "base2new" else "accuracy"
    shots = plan.args.get("shots", plan.args.get("low_shots"))  # regimes: the low-data regime's
    shots = list(shots) if isinstance(shots, (list, tuple)) else [shots]
    curves: dict[str, dict[str, tuple[list, list]]] = {}
    rows = []
    for v in values:
        echo(f"{entry.name}: {key}={v}")
        where = out / "sweeps" / f"{key}{v:g}"  # runs in OUT/sweeps/<setting><value>/<protocol>/
        summary = call(plan, where, {**settings, key: v})
        ours = Ours(plan, summary, where / plan.runs_dir_name)
        for k in shots:
            for m in plan.methods:
                x = ours.get({"method": m, "dataset": AVERAGE, "shots": k, "metric": metric})
                panel = curves.setdefault(f"{k} shots", {}).setdefault(m, ([], []))
                panel[0].append(v)
                panel[1].append(x if isinstance(x, float) else None)
                rows.append([k, m, v, x])
    return {"metric": metric, "curves": curves, "key": key}, rows, notes


def sweep_values(entry: Entry, model: str) -> tuple[list, list[str]]:
    """The values of the entry's swept setting on `model`, and a note when they are not the paper's: a model with
    fewer blocks than the paper's ViT-B/16 sweeps `last_blocks` over its own (read from its config.json, when the
    model is on this machine)."""
    key, values = entry.sweep
    if key != "last_blocks":
        return list(values), []
    from transformers import CLIPConfig

    from ..hub import resolve_model_path
    from ..protocols.dryrun import model_missing

    if model_missing(model) is not None:
        return list(values), []
    cfg = CLIPConfig.from_pretrained(resolve_model_path(model), local_files_only=True)
    blocks = min(cfg.text_config.num_hidden_layers, cfg.vision_config.num_hidden_layers)
    kept = [v for v in values if v <= blocks] or [blocks]
    if kept == list(values):
        return kept, []
    return kept, [f"{key}: {', '.join(map(str, kept))} of the paper's {', '.join(map(str, values))} (this model has "
                  f"{blocks} blocks)"]


def title_of(entry: Entry) -> str:
    return f"{PAPERS[entry.paper].short} {entry.label}: {entry.title}"

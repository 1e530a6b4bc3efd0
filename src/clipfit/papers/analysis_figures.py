"""The papers' figures that are analyses rather than tables (`clipfit paper run NAME` for them):

- "layers" (CLIPFit Figures 3, 4, 7-11): train the entry's variants (CLIPFit, and CLIPFit without its regulariser)
  with `record=change,grads,steps` on one dataset, one seed, and draw per-layer change, squared gradient sums or the
  change at every step (`clipfit.analyses.records`);
- "tsne" (CLIPFit Figure 5): train CLIPFit, embed the test images zero-shot and tuned with t-SNE;
- "sweep" (CLIPFit Figure 6, the LayerNorm paper's Figure 7): the entry's protocol call once per value of a setting
  (beta; last_blocks), each in OUT/sweeps/<setting><value>/<protocol>/ (reused), and the average metric against the
  value;
- "timing" (LLU Figure 3): seconds of one training step (forward, backward, update) against the batch size, every
  method measured side by side in this one process on the same images (`clipfit.analyses.timing`).

Runs of "layers" and "tsne" live in OUT/analyses/<dataset>/<shots>shots/<variant>/seed<seed>/ and are reused by
every entry that needs them (Figures 3, 4, 8 and 11 share DTD's; 5, 7, 9 and 10 EuroSAT's). Each figure writes
figures/<name>.png and tables/<name>.csv, .md and .json, as a table does.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

from .. import api
from ..analyses.features import tsne
from ..analyses.records import layer_figures, only_series, step_figure
from ..analyses.timing import measure_steps
from ..data.check import check
from ..engine.rundir import RunDir
from ..io import write_json
from ..plots import lines
from ..protocols.results import render
from .compare import NA, ValuesFromResults
from .dry_run import dry_run_entry
from .entries import AVERAGE, PAPERS, RECORD, STAND_INS, Entry
from .listing import describe_call
from .plan import Plan, RunOptions, call_protocol, choose_model, entry_datasets, make_plan, sweep_values
from .render import PaperResult, fmt_value, slug, write_rows

Rows = list[list[str]]


@dataclass
class AnalysisFigure:
    """One analysis figure being made: its entry, the command's options, the model and methods it runs, where its
    files go (OUT/figures/<base>.png, ...), its title and the notes under it (each kind may add some)."""

    entry: Entry
    opts: RunOptions
    model: str
    methods: list[str]
    figures: Path
    base: str
    title: str
    notes: list[str]

    @property
    def png(self) -> Path:
        return self.figures / f"{self.base}.png"


def run_analysis(entry: Entry, opts: RunOptions) -> PaperResult:
    """A figure that is an analysis: trained variants with recording, a t-SNE, a sweep of a setting through the
    entry's protocol call, or step times against the batch size. Writes figures/<name>.png and tables/<name>.csv,
    .md and .json as a table does."""
    model, why = choose_model(entry, opts.model, opts.stand_ins)
    chosen = [m for m in entry.methods if not opts.methods or m in opts.methods]
    what = f"ours: {model} ({why})" + (f", settings {' '.join(f'{k}={v}' for k, v in opts.settings.items())}"
                                       if opts.settings else "")
    if opts.stand_ins:
        what += (f"; on synthetic stand-ins. The paper's figure is for {PAPERS[entry.paper].backbone} on the real "
                 "datasets: not comparable.")
    if opts.dry_run and entry.figure == "sweep":
        return dry_run_entry(_sweep_plan(entry, opts, chosen), opts)
    if opts.dry_run:
        data = [] if opts.stand_ins else _data_lines(entry_datasets(entry), opts.root)
        text = "\n".join([f"{entry.caption} — dry run", what, f"would run: {describe_call(entry)}", *data])
        return PaperResult(text, {"name": entry.name, "dry_run": True, "model": model, "model_why": why,
                                  "runs": describe_call(entry), "data": data})
    fig = AnalysisFigure(entry, opts, model, chosen, opts.out / "figures", slug(entry.name), entry.caption,
                         [what, *entry.notes])
    tables = opts.out / "tables"
    fig.figures.mkdir(parents=True, exist_ok=True)
    tables.mkdir(parents=True, exist_ok=True)
    header, body, files = {"layers": _layers, "tsne": _tsne, "sweep": _sweep, "timing": _timing}[entry.figure](fig)
    text = render(fig.title, header, body, fig.notes) + f"\nfigure: {fig.png}"
    files += [*write_rows(tables, entry.name, fig.title, header, body, fig.notes), tables / f"{fig.base}.json"]
    data = {"name": entry.name, "paper": entry.paper, "label": entry.label, "title": fig.title, "notes": fig.notes,
            "model": model, "header": header, "rows": body, "files": [str(f) for f in files]}
    write_json(tables / f"{fig.base}.json", data)
    return PaperResult(text, data, files)


def _data_lines(names: list[str], root: str | None) -> list[str]:
    """The state of each dataset under --root, with what to do about a missing or incomplete one."""
    if not root:
        return [f"data: {', '.join(names)} read from --root, which is not given"]
    lines = []
    for f in check(names, root):
        lines.append(f"data: {f.name} {f.status}: {f.detail}")
        lines += [f"      {x}" for x in f.fix]
    return lines


# -- trained variants, recorded ---------------------------------------------------------------------------------------


def train_variants(fig: AnalysisFigure, seed: int) -> tuple[dict[str, Path], str]:
    """The entry's variants trained (or reused) with recording on; (variant -> run dir, dataset used)."""
    entry, opts = fig.entry, fig.opts
    args = entry.call.args
    dataset = STAND_INS.get(args["dataset"], args["dataset"]) if opts.stand_ins else args["dataset"]
    shots = args.get("shots", 16)
    runs = {}
    for label, variant in args["variants"].items():
        variant_dir = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        run = opts.out / "analyses" / dataset / f"{shots}shots" / variant_dir / f"seed{seed}"
        if not RunDir(run).is_finished:
            opts.echo(f"{entry.name}: training {label} on {dataset}, {shots} shots, seed {seed}")
            api.train(fig.model, dataset=dataset, out=run, method=entry.methods[0] if entry.methods else "clipfit",
                      shots=shots, seed=seed, root=opts.root, protocol=args.get("protocol", "fewshot"),
                      device=opts.device, overwrite=True, progress=opts.progress,
                      **{**opts.settings, **variant, "record": RECORD})
        runs[label] = run
    return runs, dataset


def _trained(fig: AnalysisFigure) -> dict[str, Path]:
    """The variants of a "layers" or "tsne" figure, trained on the first seed asked for (1 by default)."""
    seed = (list(fig.opts.seeds) if fig.opts.seeds else [1])[0]
    runs, used = train_variants(fig, seed)
    named = fig.entry.call.args["dataset"]
    fig.notes.append(f"dataset: {named}" + (f" -> {used}" if used != named else "") + f", seed {seed}")
    return runs


def _layers(fig: AnalysisFigure) -> tuple[list[str], Rows, list[Path]]:
    """change.png / grads.png / steps.png of the variants (the entry's `draw`, its first the figure), of the series
    the entry names; the table: layers.csv."""
    args = fig.entry.call.args
    view = only_series(_trained(fig), args.get("series"))
    work = fig.figures / fig.base
    files = layer_figures(view, work)
    if "steps" in args.get("draw", ()):
        files += step_figure(view, work, args.get("layers", "1"))
    first = {"change": "change.png", "grads": "grads.png", "steps": "steps.png"}[args.get("draw", ("change",))[0]]
    fig.png.write_bytes((work / first).read_bytes())
    body = [[*r[:4], *(f"{float(x):.4g}" if x else NA for x in r[4:])]
            for r in csv.reader((work / "layers.csv").read_text().splitlines()[1:])]
    return ["run", "series", "layer", "param", "change", "grad_sq_sum"], body, [fig.png, *files]


def _tsne(fig: AnalysisFigure) -> tuple[list[str], Rows, list[Path]]:
    """t-SNE of the test images' features, zero-shot and tuned; the table: each embedding's silhouette."""
    label, run = next(iter(_trained(fig).items()))
    run_name = re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")
    files = tsne(run, fig.figures / fig.base, run_name, fig.entry.call.args.get("points", 400), fig.opts.device)
    png = next(f for f in files if f.suffix == ".png")
    fig.png.write_bytes(png.read_bytes())
    scores = json.loads(next(f for f in files if f.suffix == ".json").read_text())["silhouette_cosine"]
    body = [[k, f"{v:.4f}" if v is not None else NA] for k, v in scores.items()]
    return ["features", "silhouette (cosine, by class)"], body, [fig.png, *files]


# -- a setting swept, step times ---------------------------------------------------------------------------------------


def _sweep_plan(entry: Entry, opts: RunOptions, chosen: list[str]) -> Plan:
    """The protocol call a sweep makes once per value of its setting."""
    return make_plan(replace(entry, figure=None), opts.model, opts.root, opts.seeds, chosen or None, opts.stand_ins,
                     opts.overrides)


def _sweep(fig: AnalysisFigure) -> tuple[list[str], Rows, list[Path]]:
    """The entry's protocol call for each value of its swept setting, runs in OUT/sweeps/<setting><value>/; the
    average metric against the value, one panel per shot count, one line per method."""
    entry, opts = fig.entry, fig.opts
    key = entry.sweep[0]
    plan = _sweep_plan(entry, opts, fig.methods)
    values, more = sweep_values(entry, plan.model)
    fig.notes.extend(more)
    metric = "hm" if plan.protocol == "base2new" else "accuracy"
    shots = plan.args.get("shots", plan.args.get("low_shots"))  # regimes: the low-data regime's
    shots = list(shots) if isinstance(shots, (list, tuple)) else [shots]
    curves: dict[str, dict[str, tuple[list, list]]] = {}
    body = []
    for v in values:
        opts.echo(f"{entry.name}: {key}={v}")
        where = opts.out / "sweeps" / f"{key}{v:g}"  # runs in OUT/sweeps/<setting><value>/<protocol>/
        ours = ValuesFromResults(plan, call_protocol(plan, opts, where, {**opts.settings, key: v}),
                                 where / plan.runs_dir_name)
        for k in shots:
            for m in plan.methods:
                x = ours.get({"method": m, "dataset": AVERAGE, "shots": k, "metric": metric})
                panel = curves.setdefault(f"{k} shots", {}).setdefault(m, ([], []))
                panel[0].append(v)
                panel[1].append(x if isinstance(x, float) else None)
                body.append([str(k), m, str(v), fmt_value(x, "accuracy")])
    png = lines(fig.png, curves, fig.title, key, f"average {metric} (%)")
    return ["shots", "method", key, metric], body, [png]


def _timing(fig: AnalysisFigure) -> tuple[list[str], Rows, list[Path]]:
    """Milliseconds per training step against the batch size, every method measured side by side here."""
    args, opts = fig.entry.call.args, fig.opts
    dataset = STAND_INS.get(args["dataset"], args["dataset"]) if opts.stand_ins else args["dataset"]
    rows = measure_steps(fig.model, dataset, opts.root, fig.methods, args["batch_sizes"], opts.device, opts.settings)
    fig.notes.append(f"dataset: {dataset}; device: {opts.device or 'auto'}")
    curves: dict[str, tuple[list, list]] = {}
    for m, b, sec, _ in rows:
        curves.setdefault(m, ([], []))
        curves[m][0].append(b)
        curves[m][1].append(sec * 1000)
    png = lines(fig.png, {"": curves}, fig.title, "batch size", "ms per training step", logx=True, max_cols=1)
    body = [[m, str(b), f"{sec * 1000:.2f}", f"{per * 1000:.3f}"] for m, b, sec, per in rows]
    return ["method", "batch size", "ms per step", "ms per image"], body, [png]

"""`clipfit paper run` (`paper_run`): run (or resume) exactly the runs a paper's table or figure needs, through the
protocol commands, and print it in the paper's layout: our number, the paper's number, the difference.

An entry of `entries.ENTRIES` is a protocol call, the paper's numbers and how the printed labels map onto our runs
(`labels`). The call goes through the Python API (`clipfit.fewshot`, `clipfit.base2new`, ...; `plan`), so the runs
are the protocol's own cells, in OUT/<protocol>/ laid out as `clipfit <protocol> --out OUT/<protocol>` lays them
out: a table resumes and reuses what that command (or another table of the same protocol) already ran. Each cell of
the paper's table is then read from the protocol's results and averaged the way the paper averages (`compare`).
Written under OUT (`render`): tables/<name>.md, .csv (one line per cell: ours, paper, difference) and .json (with
the protocol's results), and figures/<name>.png for figures (`protocol_figures`). Entries that train nothing are
`static`; figures that are analyses, `analysis_figures`; `--dry-run`, `dry_run`.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..analyses.timing import measure_steps
from ..api import _int, _list, _path, _quiet, _root, _str  # the API's argument checks: the CLI's one-line errors
from ..io import write_json
from ..protocols.results import render
from ..threads import with_threads
from .analysis_figures import run_analysis
from .compare import ComparedTable, ValuesFromResults, compare
from .dry_run import dry_run_entry
from .entries import ANALYSIS_KINDS, get_entry
from .plan import Plan, RunOptions, average_note, call_protocol, describe, plan_of
from .protocol_figures import FigureLayout, figure_table
from .render import PaperResult, cells_json, printed_header, printed_rows, slug, write_compared
from .static import STATIC_KINDS, run_static


@with_threads
def paper_run(name: str, model: str | None = None, *, out: str | os.PathLike, root: str | None = None,
              seeds: Sequence[int] | None = None, methods: Sequence[str] | None = None, stand_ins: bool | None = None,
              dry_run: bool = False, shots: Sequence[int] | None = None, low_shots: Sequence[int] | None = None,
              high_shots: Sequence[int] | None = None, episodes: int | None = None, skip_missing: bool = False,
              device: str | None = None, progress: bool = True, echo: Callable[[str], None] = _quiet,
              **settings: Any) -> PaperResult:
    """Run (or resume) the runs of a paper's table or figure (`name`, e.g. "clipfit:table1") and lay it out as the
    paper does, our number beside the paper's; writes OUT/tables/ (Markdown, CSV, JSON) and OUT/figures/ (PNG). Runs
    live in OUT/<protocol>/ as the protocol command lays them out. The real datasets are read from `root`, on the
    paper's backbone (openai/clip-vit-base-patch16) unless `model`; `stand_ins=True`: synthetic stand-ins on the
    embedded model instead. `dry_run`: every run of the grid, its settings and status, and an estimate of its time,
    datasets that cannot be read included; nothing trains. Returns a `PaperResult` (`text`, `data`, `files`)."""
    lists = lambda key, x, item: _list(key, x, item) if x is not None else None  # noqa: E731
    overrides = {"shots": lists("shots", shots, int), "low_shots": lists("low_shots", low_shots, int),
                 "high_shots": lists("high_shots", high_shots, int),
                 "episodes": _int("episodes", episodes) if episodes is not None else None}
    name = _str("name", name)
    opts = RunOptions(Path(_path("out", out)), model, _root(root), lists("seeds", seeds, int),
                      lists("methods", methods, str), stand_ins, dry_run, device, progress, echo, skip_missing,
                      overrides, dict(settings))
    return run_entry(name, opts)


def run_entry(name: str, opts: RunOptions) -> PaperResult:
    """The entry `name` run (or its dry run) with these options: a table or figure from its protocol call, a table
    that trains nothing, or a figure that is an analysis."""
    entry = get_entry(name)
    if entry.call is not None and entry.call.protocol in STATIC_KINDS:  # nothing to train: Table 8, Figure 2
        return run_static(entry, opts.out, opts.root, opts.dry_run)
    if entry.figure in ANALYSIS_KINDS:
        return run_analysis(entry, opts)
    plan = plan_of(entry, opts)
    if opts.dry_run:
        return dry_run_entry(plan, opts)
    return _run_protocol_entry(plan, opts)


def _run_protocol_entry(plan: Plan, opts: RunOptions) -> PaperResult:
    """The entry's protocol call run, its table beside the paper's (or its figure drawn) and written under OUT."""
    entry, out = plan.entry, opts.out
    summary = call_protocol(plan, opts, out, opts.settings)
    ours = ValuesFromResults(plan, summary, out / plan.runs_dir_name)
    if entry.time_batch:  # training time per image: every method's step measured side by side, here
        dataset = plan.args.get("datasets", [plan.args.get("source")])[0]
        rows = measure_steps(plan.model, dataset, opts.root, [m for m in plan.methods if m != "zeroshot"],
                             (entry.time_batch,), opts.device, opts.settings)
        ours.times = {m: per * 1000 for m, _, _, per in rows}
    title = entry.caption
    notes = [describe(plan, opts.settings), *entry.notes, *average_note(plan, summary)]
    layout: FigureLayout | None = None
    if entry.numbers:
        table = compare(entry, ours)
        notes.insert(1, "each row: our number, the paper's, and ours minus the paper's")
    else:
        table, layout = figure_table(plan, ours, summary)
    text = render(title, printed_header(table), printed_rows(table), notes)
    tables, base = out / "tables", slug(entry.name)
    files = write_compared(tables, entry.name, title, table, notes)
    if layout is not None:
        files.append(layout.draw(out / "figures" / f"{base}.png", table, title))
        text += f"\nfigure: {files[-1]}"
    data = _result_data(plan, opts.settings, title, notes, table, files, summary)
    write_json(tables / f"{base}.json", data)
    files.append(tables / f"{base}.json")
    data["files"] = [str(f) for f in files]
    return PaperResult(text, data, files)


def _result_data(plan: Plan, settings: dict[str, Any], title: str, notes: list[str], table: ComparedTable,
                 files: list[Path], summary: dict) -> dict:
    """The JSON of a table or figure: what was run and how, each cell ours beside the paper's, the protocol's
    results (the JSON file lists the other files; what `paper run --json` prints lists it too)."""
    entry = plan.entry
    return {"name": entry.name, "paper": entry.paper, "label": entry.label, "title": title, "notes": notes,
            "model": plan.model, "model_why": plan.model_why, "seeds": plan.seeds,
            "settings": json.loads(json.dumps(settings)),
            "stand_ins": plan.stand_ins and {d: plan.used(d) for d in plan.datasets},
            "header": printed_header(table), "rows": cells_json(table), "files": [str(f) for f in files],
            "protocol": summary}

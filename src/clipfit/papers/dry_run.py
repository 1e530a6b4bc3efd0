"""`paper run --dry-run` of an entry drawn from a protocol call: every run of its grid (datasets that cannot be read
included), the settings each resolves, its status and an estimate of its time, from the protocol's own dry run
(`protocols.dryrun`); a sweep lists its grid for every value of its setting. Nothing trains."""
from __future__ import annotations

import json

from ..protocols.dryrun import PlannedGrid, merged
from .entries import PAPERS
from .plan import Plan, RunOptions, call_protocol, describe, sweep_values
from .render import PaperResult


def dry_run_entry(plan: Plan, opts: RunOptions) -> PaperResult:
    """Every run of the plan's grid, the settings each resolves, their status and an estimate of their time."""
    calls, notes = [(opts.out, opts.settings)], []
    if plan.entry.sweep:
        key = plan.entry.sweep[0]
        values, notes = sweep_values(plan.entry, plan.model)
        calls = [(opts.out / "sweeps" / f"{key}{v:g}", {**opts.settings, key: v}) for v in values]
    grids = [call_protocol(plan, opts, where, st, dry_run=True) for where, st in calls]
    entry, paper = plan.entry, PAPERS[plan.entry.paper]
    title = (f"{paper.short} {entry.label} — dry run: {plan.protocol}, methods {', '.join(plan.methods)}; every run, "
             "its settings and status; nothing trains")
    grid = PlannedGrid(plan.protocol, merged([g.dry for g in grids]), plan.model, opts.root, opts.device, opts.echo,
                       title, [describe(plan, opts.settings), *notes], (entry.sweep[0],) if entry.sweep else ())
    data = {"name": entry.name, **grid.data, "methods": plan.methods, "seeds": plan.seeds, "model_why": plan.model_why,
            "args": json.loads(json.dumps(plan.args)),
            "stand_ins": plan.stand_ins and {d: plan.used(d) for d in plan.datasets}}
    return PaperResult(grid.text, data)

"""Train on a source dataset once per seed, test on targets: CoOp's cross-dataset and domain-shift protocols.

- crossdataset (CLIPFit Table 9, LLU Table 2): 16 shots of ImageNet, tested on the 10 other CoOp datasets, each
  with its own classes and template. Average: of the targets (as CLIPFit Table 9 computes it).
- domainshift (CLIPFit Table 3, LLU Table 3): 16 shots of ImageNet, tested on ImageNet-V2, -Sketch, -A and -R;
  ImageNet-A and -R hold 200 of ImageNet's classes and are scored on that subset (as CoOp does: a class-specific
  method uses its own weights of those 200 classes). Average: of the source and the targets (as CLIPFit Table 3
  computes it).
The recipes' per-protocol settings apply (CLIPFit: beta 8 cross-dataset, 2 domain shift). A class-specific method
cannot score other classes: n/a.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..data.dataset_registry import SUITES
from ..engine.run import class_subset
from ..errors import ClipfitError
from .cells import Cell, GridArgs, check_datasets, headline_metric, run_cells
from .jobs import Eval, check_methods, class_agnostic, make_job
from .results import average_label, fmt, mean_or_none, missing_note, render, summarise, value, write_results

DEFAULT_TARGETS = {"crossdataset": SUITES["coop10"], "domainshift": SUITES["imagenet_shifts"]}
AVERAGE_INCLUDES_SOURCE = {"crossdataset": False, "domainshift": True}
PAPER_TABLE = {"crossdataset": "CLIPFit Table 9", "domainshift": "CLIPFit Table 3"}


def run_transfer(protocol: str, args: GridArgs, source: str, targets: list[str], shots: int) -> dict:
    if protocol not in DEFAULT_TARGETS:
        raise ClipfitError(f"unknown protocol {protocol!r}")
    check_methods(args.methods, args.base.settings, args.base.model)
    if source in targets:
        raise ClipfitError(f"--targets includes the source {source}; it is tested on its own test split anyway")
    tasks, missing = check_datasets([source, *targets], args.base.root, args.skip_missing, required=[source],
                                    dry_run=args.dry_run)
    src = tasks[source]
    if not src.train and source not in missing:
        raise ClipfitError(f"--source {source} has no training split (a test-only set); train on another dataset")
    present = [t for t in targets if t in tasks]
    cells = []
    for method in args.methods:
        for seed in args.seeds:
            job = make_job(args.base, args.out, source, method, shots, seed, protocol, "all")
            scorable = [t for t in present if source in missing or t in missing  # a dry run: planned as scorable
                        or _can_score(job.spec, src.classnames, tasks[t].classnames)]
            job = replace(job, evals=tuple(Eval(t, dataset=t, subsample="all") for t in scorable))
            cells.append(Cell({"method": method}, seed, job))
    primary = {d: headline_metric(t) for d, t in tasks.items()}

    def values(c: Cell, m: dict) -> dict[str, Any]:
        test = m["test"]
        return {d: (test[key][primary[d]] if key in test else None)
                for d, key in [(source, "all")] + [(t, t) for t in present]}

    rows = summarise(cells, run_cells(cells, values, args.progress, args.echo, args.executor))
    summary = {**args.header(protocol), "source": source, "targets": targets, "shots": shots, "missing": missing,
               "primary_metric": primary, "rows": rows}
    return write_results(args.out, summary)


def _can_score(spec, source_classes: list[str], target_classes: list[str]) -> bool:
    """Class-agnostic methods score any classes; class-specific ones only a subset of their own (ImageNet-A/-R)."""
    return class_agnostic(spec) or class_subset(source_classes, target_classes) is not None


def transfer_table(s: dict) -> str:
    protocol, source, targets = s["protocol"], s["source"], s["targets"]
    present = [t for t in targets if t not in s["missing"]]
    with_source = AVERAGE_INCLUDES_SOURCE[protocol]
    avg_name = average_label(len(present), len(targets), "targets")
    body = []
    for m in s["methods"]:
        cells = [value(s["rows"], d, method=m) for d in [source, *present]]
        avg = mean_or_none(cells if with_source else cells[1:])
        by = dict(zip([source, *present], cells))
        body.append([m, fmt(by[source])] + [fmt(by[t]) if t in by else "missing" for t in targets] + [fmt(avg)])
    tags = {d: "" if s["primary_metric"].get(d, "accuracy") == "accuracy" else f" ({s['primary_metric'][d]})"
            for d in [source, *targets]}
    header = ["method", f"source {source}{tags[source]}"] + [t + tags[t] for t in targets] + [avg_name]
    title = (f"{protocol}: {source} ({s['shots']} shots) -> {len(targets)} targets, seeds "
             f"{' '.join(map(str, s['seeds']))} ({PAPER_TABLE[protocol]} layout; test %, mean over seeds)")
    note = ("Average: of the source and the targets, as CLIPFit Table 3 computes it" if with_source
            else "Average: of the targets, as CLIPFit Table 9 computes it")
    return render(title, header, body, [note, *missing_note(s["missing"])])


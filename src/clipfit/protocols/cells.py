"""What every grid does with its cells: the grid's arguments (`GridArgs`), its datasets read before anything trains
(`check_datasets`; a dry run plans the ones that cannot be read all the same: `DryRun`), and its cells run.

A protocol turns its arguments into *cells*: one (row, seed) of its table, each naming the run it needs as a
`jobs.RunJob`. `run_cells` makes sure every run exists (`jobs.ensure_run`, here or through an executor), then reads
each cell's numbers from its run's metrics; `results.summarise` aggregates them over seeds into results.json, and
the protocol's layout prints the paper's table from results.json alone (`layouts.format_table`).
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data.catalogue import DATASETS, load_task
from ..data.types import Task
from ..engine.run import RunSpec
from ..errors import ClipfitError
from .jobs import Backbones, RunJob, ensure_run, json_roundtrip


class MissingDatasets(ClipfitError):
    """Datasets of a grid that cannot be read (one line naming every one)."""


class Planned(Exception):
    """Raised by a dry run's executor: the protocol planned its runs (`DryRun.jobs`); nothing ran."""


@dataclass
class DryRun:
    """A grid asked to list its runs instead of running them (`GridArgs.dry_run`): what the protocol found and
    planned. Datasets that cannot be read are planned all the same (an empty Task stands in), unless skipped."""

    missing: dict[str, str] = field(default_factory=dict)  # dataset -> why it cannot be read
    skipped: list[str] = field(default_factory=list)  # left out of the grid (--skip-missing)
    tasks: dict[str, Task] = field(default_factory=dict)  # the datasets read
    jobs: list[RunJob] = field(default_factory=list)

    def stop(self, jobs: list[RunJob], progress: bool) -> list[dict]:
        """The executor of a dry run: keeps the jobs, runs none."""
        self.jobs = list(jobs)
        raise Planned


def unread(name: str) -> Task:
    """The empty Task a dry run plans a dataset with when the dataset cannot be read."""
    entry = DATASETS.get(name) if name in DATASETS else None
    return Task(name=name, classnames=[], template=(entry.template if entry else None) or "", train=[], val=[], test=[],
                reader=None)  # type: ignore[arg-type]


def _missing_error(missing: dict[str, str], root: str | None, skip_hint: bool) -> MissingDatasets:
    names = list(missing)
    if not root and all(n in DATASETS and DATASETS.get(n).needs_root for n in names):
        return MissingDatasets(f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} read from disk: pass --root DIR "
                               f"(`clipfit datasets check --root DIR {' '.join(names)}` says what goes in it)")
    hint = " (or pass --skip-missing to list them as missing)" if skip_hint else ""
    if len(missing) == 1:
        (name, why), = missing.items()
        line = why if why.startswith(f"dataset {name}") else f"dataset {name}: {why}"
        return MissingDatasets(line + hint.replace("them", "it"))
    first = next(iter(missing.values()))
    return MissingDatasets(f"{len(names)} datasets cannot be read: {', '.join(names)} (the first: {first}); `clipfit "
                           f"datasets check --root {root} {' '.join(names)}` says what to fetch for each{hint}")


def check_datasets(names: Sequence[str], root: str | None, skip_missing: bool = False,
                   required: Sequence[str] = (), dry_run: DryRun | None = None) -> tuple[dict[str, Task], dict[str, str]]:
    """Load every dataset before anything trains: {name: Task} and {name: why it is missing}. Datasets that cannot be
    read stop the grid with one line naming every one (each reader's message names the file or folder expected),
    unless `skip_missing` (never for the `required` ones, e.g. a cross-dataset source). A dry run plans them all the
    same (an empty Task stands in), or skips them with `skip_missing`, and notes them in `dry_run`."""
    tasks, missing = {}, {}
    for name in names:
        if name not in DATASETS and ":" not in name:
            load_task(name, root)  # the catalogue's one-line "unknown dataset" error
        try:
            tasks[name] = load_task(name, root)
        except ClipfitError as e:
            missing[name] = str(e)
    skip = [n for n in missing if skip_missing and n not in required]
    if dry_run is not None:
        dry_run.missing.update(missing)
        dry_run.skipped += skip
        dry_run.tasks.update(tasks)
        return {n: tasks.get(n) or unread(n) for n in names if n not in skip}, missing
    hard = {n: why for n, why in missing.items() if n not in skip}
    if hard:
        raise _missing_error(hard, root, not skip_missing and not set(hard) & set(required))
    return tasks, missing


def headline_metric(task: Task) -> str:
    """The metric a dataset's row shows: the first its paper reports (iWildCam: macro F1), else accuracy."""
    return task.metrics[0] if task.metrics else "accuracy"


@dataclass
class GridArgs:
    """What every grid command shares."""

    base: RunSpec
    out: Path
    methods: list[str]
    seeds: list[int]
    progress: bool = False
    echo: Callable[[str], None] = print
    skip_missing: bool = False
    executor: Callable[[list[RunJob], bool], list[dict]] | None = None
    dry_run: DryRun | None = None  # list the runs instead (the executor is then `dry_run.stop`)

    def header(self, protocol: str) -> dict[str, Any]:
        """The part of results.json every protocol writes."""
        return {"protocol": protocol, "model": self.base.model, "methods": self.methods, "seeds": self.seeds,
                "settings": json_roundtrip(self.base.settings)}


@dataclass
class Cell:
    """One (row, seed) of a protocol's table: its labels (dataset, shots, method, ...), the run it reads."""

    labels: dict[str, Any]
    seed: int
    job: RunJob


def _merge(jobs: dict[str, RunJob], job: RunJob) -> None:
    """Add `job` (and its first stage, before it) to `jobs`, merging the evaluations of jobs with one directory."""
    if job.first is not None:
        _merge(jobs, job.first)
    old = jobs.get(job.dir)
    if old is None:
        jobs[job.dir] = job
        return
    if old.spec != job.spec:
        raise AssertionError(f"two runs in {job.dir}: {old.spec} / {job.spec}")
    evals = old.evals + tuple(e for e in job.evals if e not in old.evals)
    jobs[job.dir] = replace(old, evals=evals, test=old.test or job.test, first=old.first or job.first)


def run_cells(cells: list[Cell], values: Callable[[Cell, dict], dict[str, Any]], progress: bool = False,
              echo: Callable[[str], None] = print,
              executor: Callable[[list[RunJob], bool], list[dict]] | None = None) -> list[dict[str, Any]]:
    """Ensure every cell's run (each run once, first stages first), then each cell's values from its metrics.

    `executor(jobs, progress)` may run the jobs elsewhere and return one metrics dict per job, in order; each job is
    `ensure_run(job, progress)`. The jobs are listed first stages first: a job whose `first` is set must start after
    the job with that directory has finished. Default: one after the other, here."""
    jobs: dict[str, RunJob] = {}
    for c in cells:
        _merge(jobs, c.job)
    order = list(jobs.values())
    by_dir: dict[str, dict] = {}
    if executor is not None:
        by_dir = dict(zip(jobs, executor(order, progress)))
    out: list[dict[str, Any]] = []
    backbones = Backbones()
    for c in cells:
        if c.job.dir not in by_dir:
            by_dir[c.job.dir] = ensure_run(jobs[c.job.dir], progress, backbones)
        v = values(c, by_dir[c.job.dir])
        echo(" ".join(str(x) for x in c.labels.values()) + f" seed {c.seed}: " + ", ".join(
            f"{k} {_short(x)}" for k, x in v.items()))
        out.append(v)
    return out


def _short(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, list):
        return f"{statistics.fmean(x):.2f} ({len(x)} episodes)"
    return f"{x:.2f}"

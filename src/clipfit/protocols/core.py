"""The one mechanism every protocol shares: runs x seeds, reuse and resume, results.json, the table.

A protocol turns its arguments into *cells*: one (row, seed) of its table, each naming the run it needs as a
`RunJob` (the run's spec, its directory, and the evaluations to record in the run's metrics.json). `run_cells`
makes sure every run exists with `ensure_run`: train it unless a finished run of the same settings is there, resume
it if it was interrupted, then add the evaluations it lacks. `ensure_run` takes and returns plain data, so an
executor can ship it to a worker. The protocol then reads each cell's numbers from its run's metrics,
`summarise` aggregates them over seeds into results.json, and the protocol's layout prints the paper's table from
results.json alone (`format_table`).

Run directories: OUT/<dataset>/<K>shot/<method>/seed<S> ("all" for K = 0; `dataset_dir` names a dataset's folder). A method that trains nothing (zero-shot)
gives the same numbers for every seed and shot count: it runs once, in OUT/<dataset>/<method>.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..data.catalogue import DATASETS, expand_datasets, load_task  # noqa: F401  (expand_datasets: used from here)
from ..data.dataset_registry import COOP11, SUITES  # noqa: F401  (named dataset lists live with the datasets)
from ..data.types import Task
from ..engine.run import RunSpec, _model_ref, eval_run, load_run, recorded_settings, resolve_configs, train_run
from ..engine.rundir import RunDir
from ..errors import ClipfitError
from ..io import write_json
from ..method import METHODS


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


# -- runs ---------------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Eval:
    """One evaluation of a trained run, recorded in its metrics.json as metrics["test"][key]: a dataset's test
    split (None: the run's own dataset / class subset), or episodes on the test classes of an episodic set."""

    key: str
    dataset: str | None = None
    subsample: str | None = None
    episodes: Episodes | None = None


@dataclass(frozen=True)
class RunJob:
    """A run a grid needs: its spec, its directory, the evaluations to record, and for 'X@Y' its first stage."""

    spec: RunSpec
    dir: str
    evals: tuple[Eval, ...] = ()
    first: RunJob | None = None
    test: bool = True  # evaluate the run's own test split right after training (key: the spec's subsample)


def trains_nothing(spec: RunSpec) -> bool:
    """True when the run trains nothing (zero-shot: its recipe has no epochs, and no LayerNorms are added to it), so
    its numbers depend on neither seed nor shots. A grid-wide `epochs=` does not make zero-shot train."""
    entry = METHODS.get(spec.method)
    if entry.cls.closed_form:
        return False
    mcfg, _ = resolve_configs(spec)
    _, recipe_tcfg = resolve_configs(replace(spec, settings={}))
    return recipe_tcfg.epochs <= 0 and not mcfg.layernorm and not mcfg.init_from


def class_agnostic(spec: RunSpec) -> bool:
    """Whether the run's method can classify classes it never trained on (with its settings: CoOp with a context per
    class cannot)."""
    return METHODS.get(spec.method).cls.agnostic_for(resolve_configs(spec)[0])


def settings_for(method: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The grid's settings that `method` (or, for 'X@Y', X) has."""
    entry = METHODS.get(method.partition("@")[0])
    known = {f.name for f in fields(entry.cls.Config)} | {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in settings.items() if k in known}


def check_methods(methods: Sequence[str], settings: dict[str, Any]) -> None:
    """Every method (and stage of 'X@Y') exists; a setting no method of the grid has is refused (a typo would
    otherwise be ignored)."""
    if not methods:
        raise ClipfitError("give at least one method")
    for m in methods:
        for part in m.split("@"):
            METHODS.get(part)
    used = {k for m in methods for k in settings_for(m, settings)}
    unknown = sorted(set(settings) - used)
    if unknown:
        raise ClipfitError(f"setting {unknown[0]}: none of the methods {', '.join(methods)} has it")


def shots_dir(shots: int) -> str:
    return f"{shots}shot" if shots > 0 else "all"


def dataset_dir(dataset: str) -> str:
    """A folder name for a dataset: its catalogue name, or for 'prefix:PATH' the prefix, the path's last part and a
    hash of the whole spec (imagefolder:/a/photos -> imagefolder-photos-1a2b3c4d)."""
    prefix, sep, rest = dataset.partition(":")
    if not sep:
        return dataset
    tail = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(rest.rstrip("/")).name or "data")
    return f"{prefix}-{tail}-{hashlib.sha1(dataset.encode()).hexdigest()[:8]}"


def make_job(base: RunSpec, out: Path, dataset: str, method: str, shots: int, seed: int, protocol: str,
             subsample: str, evals: Iterable[Eval] = (), test: bool = True) -> RunJob:
    """The job of one (dataset, shots, method, seed) under `protocol`; 'X@Y' gets Y's run of the same seed as its
    first stage. A method that trains nothing runs once per dataset (seed 1, 1 shot: only the test split counts)."""
    name, _, first = method.partition("@")
    settings = settings_for(method, base.settings)
    first_job = None
    if first:
        first_job = make_job(base, out, dataset, first, shots, seed, protocol, subsample, test=False)
        settings["init_from"] = first_job.dir
    spec = replace(base, dataset=dataset, method=name, shots=shots, seed=seed, protocol=protocol, subsample=subsample,
                   settings=settings)
    if first_job is None and trains_nothing(spec):
        spec = replace(spec, shots=1, seed=1)
        path = out / dataset_dir(dataset) / method
    else:
        path = out / dataset_dir(dataset) / shots_dir(shots) / method / f"seed{seed}"
    return RunJob(spec, str(path), tuple(evals), first_job, test)


def _json(x: Any) -> Any:
    return json.loads(json.dumps(x))


def check_same_run(run: RunDir, spec: RunSpec) -> None:
    """A one-line error when `run` holds a run of other settings than `spec` (reusing it would put its numbers in the
    wrong table)."""
    cfg = run.read_config()
    want = {"model": _model_ref(spec.model), "dataset": spec.dataset, "method": spec.method, "shots": spec.shots,
            "seed": spec.seed, "subsample": spec.subsample, "protocol": spec.resolved_protocol,
            "settings": _json(spec.settings)}
    have = {"model": _model_ref(cfg.get("model")), "dataset": cfg.get("dataset"), "method": cfg.get("method"),
            "shots": cfg.get("shots"), "seed": cfg.get("seed"), "subsample": cfg.get("subsample"),
            "protocol": cfg.get("protocol"), "settings": _json(recorded_settings(cfg))}
    diff = [k for k in want if want[k] != have[k]]
    if diff:
        k = diff[0]
        raise ClipfitError(f"{run.path} holds a run with {k}={have[k]!r}, this grid needs {k}={want[k]!r}; give another "
                           "--out, or remove that directory")


class Backbones:
    """Pristine backbones loaded once per (model, device); every run gets its own copy."""

    def __init__(self):
        self._cache: dict[tuple[str, str], Any] = {}

    def get(self, model: str, device: str | None):
        from ..backbone import Backbone
        from ..engine.loop import pick_device

        dev = pick_device(device)
        key = (model, str(dev))
        if key not in self._cache:
            self._cache[key] = Backbone.from_pretrained(model, device=dev)
        return copy.deepcopy(self._cache[key])


def evaluate_one(run_dir: str, loaded, e: Eval, progress: bool) -> dict:
    """Run one evaluation on a loaded run (its own classes and templates restored first)."""
    loaded.reset()
    if e.episodes is not None:
        from .episodic import evaluate_episodes

        return evaluate_episodes(loaded, e.episodes, progress)
    res = eval_run(run_dir, dataset=e.dataset, subsample=e.subsample, loaded=loaded, progress=progress)
    return {k: v for k, v in res.items() if k not in ("dataset", "subsample", "split")}


def ensure_run(job: RunJob, progress: bool = False, backbones: Backbones | None = None) -> dict:
    """The metrics of `job`'s run with every evaluation it needs: train it unless a finished run of the same settings
    is in its directory (an interrupted one continues from its last epoch), then evaluate what metrics.json lacks,
    writing each result as soon as it is measured. Plain data in and out, for any executor."""
    backbones = backbones or Backbones()
    if job.first is not None:
        ensure_run(job.first, progress, backbones)
    run = RunDir(job.dir)
    if run.is_run:
        check_same_run(run, job.spec)
    elif run.partial.is_run:  # an interrupted run (its checkpoint lives in the partial directory)
        check_same_run(run.partial, job.spec)
    m = run.read_metrics() if run.is_finished else None
    if m is None:
        resume = run.has_checkpoint
        m = train_run(job.spec, run.path, overwrite=not resume, resume=resume, progress=progress, test=job.test,
                      backbone=backbones.get(job.spec.model, job.spec.device))
    missing = [e for e in job.evals if e.key not in m.get("test", {})]
    if missing:
        loaded = load_run(run.path, job.spec.device, backbone=backbones.get(job.spec.model, job.spec.device))
        for e in missing:
            m.setdefault("test", {})[e.key] = evaluate_one(job.dir, loaded, e, progress)
            run.write_metrics(m)
    return m


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


# -- results ------------------------------------------------------------------------------------------------------


def harmonic_mean(b: float | None, n: float | None) -> float | None:
    if b is None or n is None:
        return None
    return 2 * b * n / (b + n) if b + n > 0 else 0.0


def mean_std(xs: list[float | None]) -> tuple[float | None, float | None]:
    if not xs or any(x is None for x in xs):  # not applicable (a class-specific method on new classes)
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


CI95_Z = 1.96


def pooled(per_seed: list[list[float]]) -> dict[str, Any]:
    """Episode accuracies of every seed pooled: mean ± 1.96 s/sqrt(n) (s: sample standard deviation)."""
    xs = [x for seed in per_seed for x in seed]
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    means = [statistics.fmean(v) for v in per_seed]
    return {"mean": statistics.fmean(xs), "ci95": CI95_Z * s / math.sqrt(len(xs)), "episodes": len(xs),
            "std": statistics.stdev(means) if len(means) > 1 else 0.0, "values": means}


def summarise(cells: list[Cell], values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per row (cells with equal labels): {**labels, "seeds": [...], "metrics": {column: {"mean", "std",
    "values"}}}; a column of episode lists is pooled over seeds (`pooled`). A measurement counts once: cells of a row
    that read the same run's same evaluations (a method that trains nothing runs once for every seed) give one
    value, so a mean ± std is never taken over repeats of one run."""
    rows: dict[str, dict[str, Any]] = {}
    counted: set[tuple[str, str, tuple]] = set()
    for c, v in zip(cells, values):
        key = json.dumps(c.labels, sort_keys=True)
        if (key, c.job.dir, c.job.evals) in counted:
            continue
        counted.add((key, c.job.dir, c.job.evals))
        r = rows.setdefault(key, {**c.labels, "seeds": [], "raw": {}})
        r["seeds"].append(c.seed)
        for col, x in v.items():
            r["raw"].setdefault(col, []).append(x)
    out = []
    for r in rows.values():
        raw = r.pop("raw")
        metrics = {}
        for col, xs in raw.items():
            if xs and all(isinstance(x, list) for x in xs):
                metrics[col] = pooled(xs)
            else:
                mu, sd = mean_std(xs)
                metrics[col] = {"mean": mu, "std": sd, "values": xs}
        out.append({**r, "metrics": metrics})
    return out


def write_results(out: Path, summary: dict) -> dict:
    write_json(out / "results.json", summary)
    return summary


def find(rows: list[dict], **labels: Any) -> dict | None:
    """The record whose labels include `labels`."""
    for r in rows:
        if all(r.get(k) == v for k, v in labels.items()):
            return r
    return None


def value(rows: list[dict], col: str, **labels: Any) -> float | None:
    r = find(rows, **labels)
    if r is None or col not in r["metrics"]:
        return None
    return r["metrics"][col]["mean"]


def mean_or_none(xs: Iterable[float | None]) -> float | None:
    xs = list(xs)
    return statistics.fmean(xs) if xs and all(x is not None for x in xs) else None


# -- tables -------------------------------------------------------------------------------------------------------


def fmt(x: float | None, std: float | None = None, ci: float | None = None) -> str:
    if x is None:
        return "n/a"
    if ci is not None:
        return f"{x:.2f} ± {ci:.2f}"
    return f"{x:.2f}" if std is None else f"{x:.2f} ± {std:.2f}"


def render(title: str, header: list[str], rows: list[list[str]], notes: Sequence[str] = ()) -> str:
    """A plain-text table: title, header, rule, rows, then notes."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(r: list[str]) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()

    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows), *notes])


LAYOUTS: dict[str, Callable[[dict], str]] = {}


def layout(protocol: str):
    """Decorator: the function that prints a protocol's results (from results.json alone)."""
    def deco(fn: Callable[[dict], str]) -> Callable[[dict], str]:
        LAYOUTS[protocol] = fn
        return fn

    return deco


def format_table(summary: dict) -> str:
    """The paper's table for a protocol's results.json."""
    from . import episodic, grid, regimes, transfer  # noqa: F401  (each registers its layout)

    try:
        return LAYOUTS[summary["protocol"]](summary)
    except KeyError:
        raise ClipfitError(f"no table layout for protocol {summary.get('protocol')!r}") from None


def missing_note(missing: dict[str, str]) -> list[str]:
    return [f"missing: {name} ({why})" for name, why in missing.items()]


def average_label(present: int, total: int, what: str = "datasets") -> str:
    """'Average', or 'Average (9 of 10 datasets)' when some are missing: never a silent average over fewer."""
    return "Average" if present == total else f"Average ({present} of {total} {what})"


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
                "settings": _json(self.base.settings)}

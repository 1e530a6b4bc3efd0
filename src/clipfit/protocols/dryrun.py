"""A grid's dry run (`--dry-run` of every grid command and of `clipfit paper run`): every run the grid would make,
whether it is done, the settings it resolves, and an estimate of its time, without training anything.

The protocol plans its runs as for a real grid (`GridArgs.dry_run`): datasets that cannot be read are planned all
the same and named at once, each with what to fetch (`data.check`), unless `--skip-missing` leaves them out (then
named as skipped). Its executor stops the protocol before the first run.

Time: per run, its optimiser steps x the measured time of one step of its method with as many classes, plus the
images it encodes (feature caches of methods that train on features, validation and test images) x one measured
forward per image of its method. Both are measured on the run's model and device with random images, each as the
difference of two timings (1 and 9 steps, within one epoch; 1 and 33 images; the faster of two of each, after a
warm-up; a difference lost in noise is timed again with up to 16 times the steps or images), at the fewest and the
most classes a method's runs need (a straight line in between), so that the setup of a run (building the method,
caching features, clustering, the frozen text features) is not counted; neither is loading the model or reading the data. The sizes of a dataset that is not there are its
published ones (`data.sources`). A model that is not on this machine is not downloaded: the estimate is then left
out, and the output says why.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..data.catalogue import DATASETS
from ..data.check import check_dataset, fix_lines
from ..data.images import ArrayReader
from ..data.sources import SOURCES
from ..data.types import Item, Task
from ..engine.loop import evaluate, feature_views, fit, on_features, pick_device
from ..engine.run import RunSpec, make_method, resolve_configs
from ..engine.rundir import RunDir
from ..hub import HUB_ID, _cached, resolve_model_path
from ..method import METHODS
from .cells import DryRun
from .jobs import Backbones, RunJob, trains_nothing
from .results import render

STEPS = 8  # steps timed beyond the first (the difference of 1 + STEPS and 1 steps)
IMAGES = 32  # images timed beyond the first in an evaluation forward
WEIGHTS = {"beta": "β", "kg_weight": "λ", "prograd_lambda": "λ", "lam": "λ"}  # regulariser weights shown per run
NOT_MEASURED = ("init_from", "record", "log")  # settings that need files or only write them


@dataclass(frozen=True)
class Shape:
    """What a dataset holds: classes and split sizes (of the data read, or the published ones), and its template."""

    classes: int
    train: int
    val: int
    test: int
    template: str
    train_classes: int
    published: bool = False


def shape_of(name: str, dry: DryRun) -> Shape:
    task = dry.tasks.get(name)
    if task is not None:
        return Shape(len(task.classnames), len(task.train), len(task.val), len(task.test), task.template,
                     len({it.label for it in task.train}) or len(task.classnames))
    s, entry = SOURCES.get(name), DATASETS.get(name) if name in DATASETS else None
    classes, sizes = (s.classes, s.sizes) if s else (0, (0, 0, 0))
    return Shape(classes, *sizes, (entry.template if entry else None) or "", classes, published=True)


def run_classes(spec: RunSpec, shape: Shape) -> int:
    """Classes a run trains on: the base half for base-to-new, the base classes for episodic."""
    if spec.subsample in ("base", "new"):
        return math.ceil(shape.classes / 2)
    return shape.train_classes if spec.subsample == "train" else shape.classes


# -- the settings of a run ------------------------------------------------------------------------------------------


def _plain(spec: RunSpec) -> RunSpec:
    return replace(spec, settings={k: v for k, v in spec.settings.items() if k not in NOT_MEASURED})


def tested(spec: RunSpec, tcfg, shape: Shape) -> str:
    """Which checkpoint the run tests."""
    if trains_nothing(_plain(spec)):
        return "nothing trained"
    if METHODS.get(spec.method).cls.closed_form:
        return "closed-form fit"
    if tcfg.select == "last":
        return "last epoch"
    return "best on val" if shape.val and tcfg.val_shots != 0 else "last epoch (no val)"


def settings_of(spec: RunSpec, shape: Shape, show: tuple[str, ...] = ()) -> dict[str, Any]:
    """The resolved settings a reader checks against a paper: epochs (or steps), lr, batch, the regulariser weight
    (and the settings in `show`), templates, validation images per class, which checkpoint is tested."""
    mcfg, tcfg = resolve_configs(_plain(spec))
    nothing = trains_nothing(_plain(spec))
    weights = {WEIGHTS[k]: getattr(mcfg, k) for k in WEIGHTS if hasattr(mcfg, k)}
    if getattr(mcfg, "reg", None) == "none":
        weights = {"reg": "none"}
    weights.update({k: getattr(cfg, k) for k in show if k not in WEIGHTS for cfg in (mcfg, tcfg) if hasattr(cfg, k)})
    templates = getattr(mcfg, "templates", "dataset")
    if templates == "dataset":
        templates = spec.template or shape.template or "the dataset's"
    return {"epochs": 0 if nothing else tcfg.epochs, "iterations": tcfg.iterations, "lr": None if nothing else tcfg.lr,
            "batch": None if nothing else tcfg.batch_size, "weights": weights, "templates": templates,
            "val_per_class": None if nothing or spec.shots <= 0 or not shape.val else tcfg.val_shots,
            "tested": tested(spec, tcfg, shape)}


def status_of(job: RunJob, dry: DryRun) -> str:
    if job.spec.dataset in dry.missing:
        return "data missing"
    run = RunDir(job.dir)
    if run.is_finished:
        m = run.read_metrics() or {}
        lacking = [e.key for e in job.evals if e.key not in m.get("test", {})]
        return f"finished, {len(lacking)} evaluation(s) to add" if lacking else "finished"
    return "interrupted" if run.has_checkpoint else "to train"


# -- the clock ------------------------------------------------------------------------------------------------------


def model_missing(model: str) -> str | None:
    """Why `model` cannot be loaded without the network (None when it can): a dry run downloads nothing."""
    path = resolve_model_path(model)
    if os.path.isdir(path):
        return None
    if HUB_ID.fullmatch(path):
        return None if _cached(path) else "not in the local Hugging Face cache"
    return "not a local folder"


def timing_task(n_classes: int, n_train: int, n_test: int, size: int, template: str) -> Task:
    """Random images of the model's size with `n_classes` classes: what a step costs does not depend on the pixels."""
    pixels = np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    names = [f"class {c}" for c in range(n_classes)]
    items = [Item(f"x/{i % 8}", i % n_classes, names[i % n_classes]) for i in range(max(n_train, n_test))]
    return Task("timing", names, template, items[:n_train], [], items[:n_test], ArrayReader({"x": pixels}))


class Clock:
    """One step and one evaluation forward per image per method (with its settings, protocol and batch), measured on
    the model and device with random images, setup excluded (differences of two timings). Measured at the fewest and
    the most classes the runs of a method need; a run in between gets the straight line through the two."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo
        self.backbones = Backbones()
        self.needs: dict[str, tuple[RunSpec, set[int]]] = {}
        self.points: dict[str, dict[int, dict]] = {}

    @staticmethod
    def key(spec: RunSpec) -> str:
        spec = _plain(spec)
        batch = resolve_configs(spec)[1].batch_size
        return json.dumps([spec.method, spec.settings, spec.resolved_protocol, batch], default=str)

    def need(self, spec: RunSpec, n_classes: int) -> None:
        self.needs.setdefault(self.key(spec), (_plain(spec), set()))[1].add(max(1, n_classes))

    def measure_needed(self) -> None:
        for key, (spec, classes) in self.needs.items():
            for c in sorted({min(classes), max(classes)}):
                if c not in self.points.setdefault(key, {}):
                    batch = resolve_configs(spec)[1].batch_size
                    self.echo(f"timing {spec.method} with {c} classes, batch {batch}")
                    self.points[key][c] = {"method": spec.method, "classes": c, "batch": batch, **self._measure(spec, c)}

    @property
    def measured(self) -> list[dict]:
        return [rec for points in self.points.values() for rec in points.values()]

    def at(self, spec: RunSpec, n_classes: int) -> dict:
        """The measurement for `n_classes`: measured, or on the line through the two measured class counts."""
        points = self.points[self.key(spec)]
        n = max(1, n_classes)
        if n in points:
            return points[n]
        (c0, r0), (c1, r1) = sorted(points.items())[0], sorted(points.items())[-1]
        w = (n - c0) / (c1 - c0)
        return {**r0, "classes": n, **{k: None if r0[k] is None else max(0.0, r0[k] + w * (r1[k] - r0[k]))
                                       for k in ("step", "forward", "overhead")}}

    def _build(self, spec: RunSpec, n_classes: int):
        mcfg, tcfg = resolve_configs(spec)
        device = pick_device(spec.device)
        backbone = self.backbones.get(spec.model, spec.device)
        # the first timed steps in one epoch: what an epoch costs beyond its steps is not counted either
        task = timing_task(n_classes, (1 + STEPS) * max(1, tcfg.batch_size), 1 + 16 * IMAGES, backbone.image_spec.size,
                           "a photo of a {}.")
        method = make_method(spec.method, backbone, task.classnames, task.template, mcfg).to(device)
        method.size_for(len(task.train))
        return method, task, tcfg, device

    def _measure(self, spec: RunSpec, n_classes: int) -> dict:
        """{"step": seconds or None, "forward": seconds per image, "overhead": seconds per evaluation, "features":
        trains on cached features, "views": feature views}."""
        method, task, tcfg, device = self._build(spec, n_classes)
        rec: dict[str, Any] = {"step": None, "features": on_features(method, tcfg),
                               "views": max(1, feature_views(method, tcfg))}
        if not trains_nothing(spec) and not method.closed_form and method.trainable():
            quick = replace(tcfg, validate="never", select="last", val_shots=0)
            rec["step"] = per_unit(lambda n: fit(method, task, replace(quick, iterations=n), 1, device,
                                                 log=lambda s: None, progress=False), STEPS)[1]
        method.eval()
        rec["overhead"], rec["forward"] = per_unit(
            lambda n: evaluate(method, task, task.test[:n], tcfg, device, False, "test"), IMAGES)
        return rec


def per_unit(run: Callable[[int], Any], units: int) -> tuple[float, float]:
    """(fixed seconds, seconds per unit) of `run(n)`: the difference of the fastest of two timings of n = 1 + units
    and of n = 1, after one warm-up, over `units`. A difference within the timings' own spread (noise, on a busy
    machine) is timed again with 4 times the units, up to `units` x 16."""
    run(1)
    most = units * 16
    while True:
        times: dict[int, list[float]] = {1: [], 1 + units: []}
        for n in (1, 1 + units, 1, 1 + units):
            t = time.perf_counter()
            run(n)
            times[n].append(time.perf_counter() - t)
        diff = min(times[1 + units]) - min(times[1])
        spread = max(abs(a - b) for a, b in times.values())
        if diff > 2 * spread or units >= most:
            return min(times[1]), max(0.0, diff) / units
        units *= 4


def job_seconds(job: RunJob, status: str, shape: Shape, shapes: Callable[[str], Shape], clock: Clock) -> float:
    """The estimate of a run: its steps x one step, the images it encodes x one forward (what it lacks only)."""
    if status == "finished":
        return 0.0
    spec = _plain(job.spec)
    n_cls = run_classes(spec, shape)
    rec = clock.at(spec, n_cls)
    seconds = 0.0
    if not status.startswith("finished") and not trains_nothing(spec):
        _, tcfg = resolve_configs(spec)
        share = n_cls / max(1, shape.classes)
        n_train = spec.shots * n_cls if spec.shots > 0 else round(shape.train * share)
        n_val = (tcfg.val_shots or 0) * n_cls if spec.shots > 0 and shape.val else round(shape.val * share)
        if rec["features"]:
            seconds += (n_train * rec["views"] + n_val) * rec["forward"]
        if rec["step"] is not None:
            batches = n_train // tcfg.batch_size if n_train >= tcfg.batch_size else 1
            seconds += (tcfg.iterations or tcfg.epochs * batches) * rec["step"]
            if not rec["features"] and tcfg.select == "best":
                seconds += n_val * rec["forward"] * math.ceil(tcfg.epochs / max(1, tcfg.eval_every))
    if not status.startswith("finished") and job.test:
        seconds += rec["overhead"] + shape.test * (n_cls / max(1, shape.classes)) * rec["forward"]
    done = _recorded(job) if status.startswith("finished") else set()
    for e in job.evals:
        if e.key not in done:
            other = shapes(e.dataset) if e.dataset else shape
            seconds += rec["overhead"] + other.test * rec["forward"]
    return seconds


def _recorded(job: RunJob) -> set[str]:
    return set((RunDir(job.dir).read_metrics() or {}).get("test") or {})


# -- the listing ----------------------------------------------------------------------------------------------------


def duration(x: float) -> str:
    if x < 90:
        return f"{x:.0f} s"
    if x < 5400:
        return f"{x / 60:.1f} min"
    return f"{x / 3600:.1f} h"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items()) or "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def data_lines(dry: DryRun, root: str | None) -> list[str]:
    """Every dataset that cannot be read, at once, one line each with what to fetch under it; which of them
    --skip-missing leaves out."""
    if not dry.missing:
        return []
    planned = [n for n in dry.missing if n not in dry.skipped]
    lines = [f"data: {len(dry.missing)} of the datasets cannot be read under --root {root}"
             + ("; their runs are planned below, as 'data missing'" if planned else "")
             + (f"; skipped (--skip-missing), no run planned: {', '.join(dry.skipped)}" if dry.skipped else "")]
    width = max(map(len, dry.missing))
    for name, why in dry.missing.items():
        finding = check_dataset(name, root) if root and name in SOURCES else None
        state = f"{finding.status}: {finding.detail}" if finding else why
        lines.append(f"  {name:{width}s}  {state}")
        lines += [" " * (width + 4) + x for x in (finding.fix if finding else fix_lines(name, root or "ROOT"))]
    return lines


def merged(dries: list[DryRun]) -> DryRun:
    """One dry run of several protocol calls (a sweep: one call per value)."""
    out = DryRun()
    for d in dries:
        out.missing.update(d.missing)
        out.skipped += [n for n in d.skipped if n not in out.skipped]
        out.tasks.update(d.tasks)
        out.jobs += d.jobs
    return out


@dataclass
class PlannedGrid:
    """What a dry run planned (`dry`), described on first use: `text` (what the command prints; also `table()`) and
    `data` (its JSON; also `summary`). `head`: lines under the title; `show`: settings shown beside the weights."""

    protocol: str
    dry: DryRun
    model: str
    root: str | None
    device: str | None = None
    echo: Callable[[str], None] = field(default=lambda s: None, repr=False)
    title: str | None = None
    head: list[str] = field(default_factory=list)
    show: tuple[str, ...] = ()

    @functools.cached_property
    def _described(self) -> tuple[str, dict]:
        return describe(self)

    @property
    def text(self) -> str:
        return self._described[0]

    @property
    def data(self) -> dict:
        return self._described[1]

    def table(self) -> str:
        return self.text

    @property
    def summary(self) -> dict:
        return self.data


def describe(g: PlannedGrid) -> tuple[str, dict]:
    """The dry run's text and JSON: what cannot be read, every planned run with its settings and status, the
    estimate (or why there is none)."""
    shapes: dict[str, Shape] = {}

    def shape(name: str) -> Shape:
        if name not in shapes:
            shapes[name] = shape_of(name, g.dry)
        return shapes[name]

    why_not = model_missing(g.model)
    clock = Clock(g.echo) if why_not is None else None
    statuses = [status_of(job, g.dry) for job in g.dry.jobs]
    if clock:
        for job, status in zip(g.dry.jobs, statuses):
            if status != "finished":
                clock.need(job.spec, run_classes(job.spec, shape(job.spec.dataset)))
        clock.measure_needed()
    runs = []
    for job, status in zip(g.dry.jobs, statuses):
        sh = shape(job.spec.dataset)
        seconds = job_seconds(job, status, sh, shape, clock) if clock else None
        method = job.spec.method + (f"@{job.first.spec.method}" if job.first else "")
        runs.append({"dir": job.dir, "dataset": job.spec.dataset, "shots": job.spec.shots, "method": method,
                     "seed": job.spec.seed, "status": status, "settings": settings_of(job.spec, sh, g.show),
                     "seconds": None if seconds is None else round(seconds, 2)})
    counts: dict[str, int] = {}
    for r in runs:
        key = r["status"].split(",")[0]
        counts[key] = counts.get(key, 0) + 1
    total = sum(r["seconds"] or 0.0 for r in runs) if clock else None
    top = "\n".join([g.title or f"{g.protocol} — dry run: every run, its settings and status; nothing trains",
                     *g.head, *data_lines(g.dry, g.root)])
    estimate = _estimate_line(total, clock, g.model, why_not, g.device,
                              any(shape(r["dataset"]).published for r in runs))
    summary = [f"{len(runs)} runs: " + ", ".join(f"{n} {k}" for k, n in counts.items()), estimate]
    data = {"dry_run": True, "protocol": g.protocol, "model": g.model, "root": g.root, "missing": g.dry.missing,
            "skipped": g.dry.skipped, "runs": runs, "counts": counts,
            "estimated_seconds": None if total is None else round(total, 1), "estimate": estimate,
            "measured": clock.measured if clock else []}
    return render(top, _HEADER, _rows(runs), summary), data


_HEADER = ["dataset", "shots", "method", "seeds", "status", "epochs", "lr", "batch", "β / λ", "templates", "val/class",
           "tested", "estimate"]


def _rows(runs: list[dict]) -> list[list[str]]:
    """One line per dataset, shots, method, status and settings, its seeds together."""
    groups: dict[str, list[dict]] = {}
    for r in runs:
        key = json.dumps([r["dataset"], r["shots"], r["method"], r["status"], r["settings"]], default=str)
        groups.setdefault(key, []).append(r)
    out = []
    for rs in groups.values():
        r, st = rs[0], rs[0]["settings"]
        epochs = f"{st['iterations']} steps" if st["iterations"] else _fmt(st["epochs"])
        secs = [x["seconds"] for x in rs if x["seconds"] is not None]
        shots = "-" if st["tested"] == "nothing trained" else "all" if r["shots"] <= 0 else str(r["shots"])
        seeds = sorted({x["seed"] for x in rs})
        times = f" (x{len(rs) // len(seeds)})" if len(rs) > len(seeds) else ""  # a sweep: one run per value
        out.append([r["dataset"], shots, r["method"], ",".join(map(str, seeds)) + times, r["status"], epochs, _fmt(st["lr"]), _fmt(st["batch"]),
                    _fmt(st["weights"]), st["templates"], _fmt(st["val_per_class"]), st["tested"],
                    duration(sum(secs)) if secs else "-"])
    return out


def _estimate_line(total: float | None, clock: Clock | None, model: str, why_not: str | None, device: str | None,
                   published: bool) -> str:
    if clock is None:
        return (f"time: not estimated: the model {model} is {why_not}, and a dry run downloads nothing; the estimate "
                "needs one measured training step of each method on the model (run the dry run where the model is, "
                "or pass --model PATH)")
    sizes = "; datasets not there: their published sizes" if published else ""
    return (f"estimated {duration(total or 0.0)} on {pick_device(device)}: per run, its training steps x one measured "
            "step of its method (as many classes, random images), plus the images it encodes x one measured forward; "
            f"setup, loading the model and reading the data not counted{sizes}")

"""The runs a grid needs: a `RunJob` per run (its spec, its directory, the evaluations to record in its metrics.json;
for 'X@Y' the job of its first stage), made by `make_job`, and `ensure_run`, which makes sure a job's run exists:
trained unless a finished run of the same settings is there, resumed if it was interrupted, then evaluated on what
its metrics lack. `ensure_run` takes and returns plain data, so an executor can ship it to a worker.

Run directories: OUT/<dataset>/<K>shot/<method>/seed<S> ("all" for K = 0; `dataset_dir` names a dataset's folder). A
method that trains nothing (zero-shot) gives the same numbers for every seed and shot count: it runs once, in
OUT/<dataset>/<method>.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..backbone import Backbone
from ..config import TrainConfig
from ..engine.loop import pick_device
from ..engine.run import RunSpec, _model_ref, eval_run, load_run, recorded_settings, resolve_configs, train_run
from ..engine.rundir import RunDir
from ..engine.support import check_method_on_model
from ..errors import ClipfitError
from ..method import METHODS
from .classifier_baseline import Episodes, evaluate_episodes


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


def check_methods(methods: Sequence[str], settings: dict[str, Any], model: str | None = None) -> None:
    """Every method (and stage of 'X@Y') exists and runs on `model`'s family (read from its config.json); a setting
    no method of the grid has is refused (a typo would otherwise be ignored). Before any run starts."""
    if not methods:
        raise ClipfitError("give at least one method")
    for m in methods:
        for part in m.split("@"):
            METHODS.get(part)
            check_method_on_model(part, model)
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


def json_roundtrip(x: Any) -> Any:
    """`x` as JSON gives it back (tuples as lists, keys as strings): how a setting is recorded."""
    return json.loads(json.dumps(x))


def check_same_run(run: RunDir, spec: RunSpec) -> None:
    """A one-line error when `run` holds a run of other settings than `spec` (reusing it would put its numbers in the
    wrong table)."""
    cfg = run.read_config()
    want = {"model": _model_ref(spec.model), "dataset": spec.dataset, "method": spec.method, "shots": spec.shots,
            "seed": spec.seed, "subsample": spec.subsample, "protocol": spec.resolved_protocol,
            "settings": json_roundtrip(spec.settings)}
    have = {"model": _model_ref(cfg.get("model")), "dataset": cfg.get("dataset"), "method": cfg.get("method"),
            "shots": cfg.get("shots"), "seed": cfg.get("seed"), "subsample": cfg.get("subsample"),
            "protocol": cfg.get("protocol"), "settings": json_roundtrip(recorded_settings(cfg))}
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
        dev = pick_device(device)
        key = (model, str(dev))
        if key not in self._cache:
            self._cache[key] = Backbone.from_pretrained(model, device=dev)
        return copy.deepcopy(self._cache[key])


def evaluate_one(run_dir: str, loaded, e: Eval, progress: bool) -> dict:
    """Run one evaluation on a loaded run (its own classes and templates restored first)."""
    loaded.reset()
    if e.episodes is not None:
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

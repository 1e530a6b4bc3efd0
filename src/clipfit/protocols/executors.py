"""Where a grid's runs execute: in this process (the default, `run_cells` without an executor) or as Ray tasks.

An executor is `executor(jobs, progress) -> [metrics per job]` (see `run_cells`): each job is `ensure_run(job)`, so a
Ray worker trains, resumes or reuses a run exactly as the in-process loop does, writing into the same run directory
(on a cluster of several machines, `--out` and the data must be on storage every node sees). A job whose first stage
('X@Y') is another job starts only after that job's task has finished (its result is passed as a dependency).
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import replace

from ..errors import ClipfitError
from .jobs import RunJob, ensure_run

Executor = Callable[[list[RunJob], bool], list[dict]]
EXECUTORS = ("local", "ray")


def _absolute(job: RunJob) -> RunJob:
    """The job with its run directory (and a local dataset root) absolute: a worker may start in another folder."""
    spec = job.spec
    if spec.root and os.path.exists(spec.root):
        spec = replace(spec, root=os.path.abspath(spec.root))
    first = _absolute(job.first) if job.first is not None else None
    return replace(job, spec=spec, dir=os.path.abspath(job.dir), first=first)


def _ensure_after(job: RunJob, progress: bool, *_first_done: dict) -> dict:
    """`ensure_run` in a worker; the extra arguments (finished first stages) only order the task after them."""
    return ensure_run(job, progress)


def ray_executor(address: str | None = None, gpus_per_run: float | None = None, cpus_per_run: float = 1,
                 init: dict | None = None) -> Executor:
    """An executor that sends each run to Ray as a task: one GPU per run when the cluster has GPUs (`gpus_per_run`
    overrides), `cpus_per_run` CPUs. `address`: a running cluster ('auto', 'ray://host:10001'); None starts or joins a
    local one. Ray is started on first use, not here. Raises a one-line error when Ray is not installed."""
    if importlib.util.find_spec("ray") is None:
        raise ClipfitError("--executor ray needs Ray: pip install 'clipfit[ray]'")

    def run(jobs: list[RunJob], progress: bool) -> list[dict]:
        import ray  # an optional library (clipfit[ray]), loaded when the grid runs

        if not ray.is_initialized():
            ray.init(address=address, **(init or {}))
        gpus = gpus_per_run
        if gpus is None:  # a GPU per run when the cluster has them, unless the runs are asked to use the CPU
            on_cpu = all(j.spec.device == "cpu" for j in jobs)
            gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 and not on_cpu else 0
        task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus, max_retries=0)(_ensure_after)
        refs: dict[str, object] = {}
        for job in jobs:  # first stages are listed before the jobs that need them
            after = [refs[job.first.dir]] if job.first is not None and job.first.dir in refs else []
            refs[job.dir] = task.remote(_absolute(job), progress, *after)
        try:
            return ray.get([refs[j.dir] for j in jobs])
        except ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None

    return run


def make_executor(name: str | None, address: str | None = None) -> Executor | None:
    """The executor named on the command line: None for 'local' (in-process), a Ray executor for 'ray'."""
    if name in (None, "local"):
        if address:
            raise ClipfitError("--address is for --executor ray")
        return None
    if name == "ray":
        return ray_executor(address)
    raise ClipfitError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")

"""CPU threads: chosen once at the process edge (the command line, the API's entry points), never in the engine.

`--threads N` / `threads=N` wins; else OMP_NUM_THREADS when it is set (torch reads it at start); else the measured
default `default_threads()`: the cores not busy with other processes, at most 4 (benchmarks/bench_threads.py: the numbers are in the README's speed section).
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import ClipfitError

# Measured (benchmarks/bench_threads.py, 2 shared cores): with other processes on the cores a thread more than the
# cores left free made a step 5-7x slower (threads spin waiting for a core), so the default counts only free cores.
# The cap of 4 is not measured here (no idle many-core machine was at hand): past a few threads a CLIP step on CPU
# gains little.
MAX_DEFAULT_THREADS = 4


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_cores() -> int:
    """Cores not busy with other processes: the cores less the 1-minute load average (rounded), at least 1."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this system
        load = 0.0
    return max(1, cores() - int(load + 0.5))


def default_threads() -> int:
    """Threads when nothing is asked: OMP_NUM_THREADS when set, else min(free cores, MAX_DEFAULT_THREADS)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(free_cores(), MAX_DEFAULT_THREADS))


_asked: int | None = None  # the number a caller asked for: later calls without one keep it


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to `threads`; None: what an earlier call asked for, else `default_threads()`
    (so an entry point that calls another, or the command line that calls the API, sets them once). Returns the
    number of threads."""
    global _asked
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ClipfitError(f"--threads {threads!r}: must be a whole number >= 1")
    import torch

    if threads is not None:
        _asked = threads
    n = _asked if _asked is not None else default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


F = TypeVar("F", bound=Callable[..., Any])


def with_threads(fn: F) -> F:
    """An API entry point that takes `threads=N` (None: the default) and sets them before it runs."""

    @functools.wraps(fn)
    def run(*args: Any, threads: int | None = None, **kw: Any) -> Any:
        set_threads(threads)
        return fn(*args, **kw)

    run.__doc__ = (fn.__doc__ or "") + "\n\n    `threads`: CPU threads for torch (default: OMP_NUM_THREADS, else the free cores, at most 4)."
    return run  # type: ignore[return-value]

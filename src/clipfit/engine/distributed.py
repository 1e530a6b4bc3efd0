"""Data-parallel training over several processes (`accelerate launch -m clipfit.cli train ...`, or any launcher that
sets WORLD_SIZE / RANK / LOCAL_RANK / MASTER_ADDR / MASTER_PORT, such as torchrun).

The result is one process's with the same global batch: every process draws the same global batch (same data order,
same augmentation: the generators are seeded alike), keeps its contiguous share (`shard`), and the gradients of its
share's loss are summed across processes weighted by the share's size (`reduce_grads`), which is the gradient of the
global batch's mean loss plus its batch-independent terms. Predictions (evaluation) are split by index across the
processes and gathered in order (`gather`). Only the main process writes the run directory (`transaction`): the others
read the checkpoint to resume and write nothing.

Hugging Face `accelerate` starts the processes and the process group (`PartialState`: gloo on CPU, NCCL on GPUs,
one GPU per process). In a single process (no WORLD_SIZE > 1) nothing here imports accelerate or torch.distributed.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

from ..errors import ClipfitError


class Single:
    """One process: every operation is the identity."""

    world, rank, active, is_main = 1, 0, False, True
    device: torch.device | None = None

    def shard(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def share(self, n: int) -> float:
        return 1.0

    def reduce_grads(self, params: list[torch.nn.Parameter], weight: float) -> None:
        pass

    def reduce_values(self, values: dict[str, float], weight: float) -> dict[str, float]:
        return values

    def indices(self, n: int) -> range:
        return range(n)

    def gather(self, parts: tuple[torch.Tensor, ...], n: int) -> tuple[torch.Tensor, ...]:
        return parts

    def barrier(self) -> None:
        pass


class DataParallel(Single):
    """`world` processes started by a launcher; the process group comes from accelerate's `PartialState`."""

    active = True

    def __init__(self):
        try:
            from accelerate import PartialState
        except ImportError:
            raise ClipfitError("several processes (WORLD_SIZE > 1) need accelerate: pip install 'clipfit[multi]'") from None
        import torch.distributed as dist

        cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
        self.state = PartialState(cpu=cpu)  # `accelerate launch --cpu`, or no GPU: gloo on CPU
        self.dist = dist
        self.world, self.rank, self.is_main = self.state.num_processes, self.state.process_index, self.state.is_main_process
        self.device = self.state.device

    def _bounds(self, n: int) -> tuple[int, int]:
        per = -(-n // self.world)  # ceil: the first processes take one more
        return min(n, self.rank * per), min(n, (self.rank + 1) * per)

    def shard(self, t: torch.Tensor) -> torch.Tensor:
        lo, hi = self._bounds(len(t))
        return t[lo:hi]

    def share(self, n: int) -> float:
        lo, hi = self._bounds(n)
        return (hi - lo) / max(1, n)

    def reduce_grads(self, params: list[torch.nn.Parameter], weight: float) -> None:
        """grad := sum over processes of weight_p * grad_p (one flat all-reduce); a process with an empty share adds 0."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads]) * weight
        self.dist.all_reduce(flat)
        i = 0
        for p, g in zip(params, grads):
            p.grad = flat[i:i + g.numel()].view_as(g).to(g.dtype)
            i += g.numel()

    def reduce_values(self, values: dict[str, float], weight: float) -> dict[str, float]:
        keys = sorted(values)
        t = torch.tensor([values[k] * weight for k in keys], dtype=torch.float64, device=self.device)
        self.dist.all_reduce(t)
        return dict(zip(keys, t.tolist()))

    def indices(self, n: int) -> range:
        return range(self.rank, n, self.world)

    def gather(self, parts: tuple[torch.Tensor, ...], n: int) -> tuple[torch.Tensor, ...]:
        """Every process's rows (rows rank, rank + world, ... of `n`) back in order, on every process."""
        got: list[Any] = [None] * self.world
        self.dist.all_gather_object(got, [p.cpu() for p in parts])
        out = []
        for k, first in enumerate(parts):
            full = torch.empty((n, *first.shape[1:]), dtype=first.dtype)
            for r in range(self.world):
                full[r::self.world] = got[r][k]
            out.append(full)
        return tuple(out)

    def barrier(self) -> None:
        self.dist.barrier()


_CURRENT: Single | None = None


def current() -> Single:
    """This process's place among the launched processes (one process unless a launcher set WORLD_SIZE > 1)."""
    global _CURRENT
    if _CURRENT is None:
        _CURRENT = DataParallel() if int(os.environ.get("WORLD_SIZE", "1")) > 1 else Single()
    return _CURRENT


def single_under_launcher() -> str | None:
    """What to say when a launcher asked for several processes but this is the only one (None otherwise):
    `accelerate launch --cpu --num_processes N` starts one process (accelerate starts several CPU processes only
    through mpirun, `--mpirun_hostfile`); it sets MASTER_PORT and ACCELERATE_USE_CPU but no WORLD_SIZE."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or "MASTER_PORT" not in os.environ:
        return None
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes"):
        return None
    return ("`accelerate launch --cpu` started this one process only (it starts several CPU processes only through "
            "mpirun); training in 1 process. For N CPU processes: torchrun --nproc-per-node N -m clipfit.cli train ...")


class _Follower:
    """A process other than the main one: reads the main process's working directory, writes nothing."""

    _NO_OP = {"write_config", "write_items", "write_tuned", "write_metrics", "save_checkpoint", "drop_checkpoint"}

    def __init__(self, run):
        self._run = run

    def __getattr__(self, name: str):
        if name in self._NO_OP:
            return lambda *a, **k: None
        return getattr(self._run, name)

    @contextlib.contextmanager
    def logger(self) -> Iterator:
        yield lambda line: None


@contextlib.contextmanager
def transaction(run, overwrite: bool = False, resume: bool = False, protect=()) -> Iterator:
    """`run.transaction` on the main process; the others wait until it has begun (to read its checkpoint when
    resuming) and, at the end, until it has committed the run."""
    dp = current()
    if not dp.active:
        with run.transaction(overwrite, resume, protect) as work:
            yield work
        return
    if dp.is_main:
        with run.transaction(overwrite, resume, protect) as work:
            dp.barrier()
            yield work
    else:
        dp.barrier()
        yield _Follower(run.partial)
    dp.barrier()

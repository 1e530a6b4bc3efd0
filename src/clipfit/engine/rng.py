"""Random number generator states for checkpoints: what a resumed run needs to continue bit for bit."""
from __future__ import annotations

import random
from typing import Protocol, cast

import numpy as np
import torch


class SeededSource(Protocol):
    """What a source of training batches (`loop.ImageSource`, `loop.FeatureSource`) gives a checkpoint: the states
    of its own generators (data order, augmentation, which cached view is next), and puts them back."""

    def rng_state(self) -> tuple[dict[str, torch.Tensor], dict]: ...

    def set_rng_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None: ...


def py_state(rng: random.Random | None = None) -> list:
    """A Python random generator's state as JSON (the global one by default)."""
    version, internal, gauss = (rng or random).getstate()
    return [version, list(internal), gauss]


def set_py_state(state: list, rng: random.Random | None = None) -> None:
    (rng or random).setstate((state[0], tuple(state[1]), state[2]))


def capture_rng(source: SeededSource) -> tuple[dict[str, torch.Tensor], dict]:
    """The states of every random number generator training draws from: Python's, NumPy's, torch's (CPU and every
    CUDA device) and the source's own (data order, augmentation); as (tensors, JSON), for the checkpoint."""
    kind, keys, pos, has_gauss, gauss = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    tensors = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    src_tensors, src_meta = source.rng_state()
    tensors.update({f"source_{k}": t for k, t in src_tensors.items()})
    meta = {"python": py_state(), "numpy": [kind, int(pos), int(has_gauss), float(gauss)], "source": src_meta}
    return tensors, meta


def restore_rng(source: SeededSource, tensors: dict[str, torch.Tensor], meta: dict) -> bool:
    """Put back what `capture_rng` saved; False when the checkpoint has no states (written by clipfit 0.1)."""
    if "torch" not in tensors:
        return False
    torch.set_rng_state(tensors["torch"])
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    set_py_state(meta["python"])
    cuda = [tensors[f"cuda{i}"] for i in range(len(tensors)) if f"cuda{i}" in tensors]
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
    source.set_rng_state({k[7:]: t for k, t in tensors.items() if k.startswith("source_")}, meta["source"])
    return True

"""Atomic file writes, CSV tables, and safetensors-only weight I/O (no pickle is ever read from disk).

Every error reading or writing a file is a one-line `ClipfitError` naming the file and what to do."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .errors import ClipfitError

_UMASK: int | None = None


def _file_mode() -> int:
    """The mode `open()` would give a new file (0o666 less the umask); mkstemp's own is 0o600."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def os_error(e: OSError, path: str | os.PathLike, doing: str) -> ClipfitError:
    """A one-line error for an OSError while `doing` (e.g. 'write') `path`."""
    why = e.strerror or type(e).__name__
    hint = {1: "check its permissions", 13: "check its permissions", 30: "the file system is read-only", 28: "free some disk space",
            36: "choose a shorter name", 20: "a part of the path is a file, not a folder",
            21: "it is a folder, not a file", 17: "it already exists"}.get(e.errno or 0, "")
    return ClipfitError(f"cannot {doing} {path}: {why}" + (f"; {hint}" if hint else ""))


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one, never half of one.
    `durable=False` skips the fsync: still whole after a killed process, maybe lost after a power cut."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _file_mode())
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise os_error(e, path, "write") from None
    except BaseException:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """A CSV file (its folder made): the header, then the rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def read_bytes(path: str | os.PathLike, what: str = "file") -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ClipfitError(f"{what} not found: {path}") from None
    except OSError as e:
        raise os_error(e, path, "read") from None


def parse_json(data: bytes, path: str | os.PathLike) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ClipfitError(f"not valid JSON: {path} ({e}); the file was changed or damaged") from None


def read_json(path: str | os.PathLike) -> Any:
    return parse_json(read_bytes(path), path)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tensors_to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """safetensors bytes. With at most one metadata key they are a function of the tensors alone (safetensors writes
    several metadata keys in a random order, so the same weights would give files with different checksums)."""
    from safetensors.torch import save

    return save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)


def tensors_from_bytes(data: bytes, path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of safetensors bytes read from `path`; a one-line error for anything else."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, KeyError, TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ClipfitError(f"{path} is not a readable safetensors file ({first}): the file was changed or damaged, "
                           "or is not a clipfit weights file") from None
    return tensors, metadata


def check_finite(tensors: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """A one-line error when a floating-point tensor holds NaN or infinity (such weights give only NaN)."""
    for k, t in tensors.items():
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            n = int((~torch.isfinite(t)).sum())
            raise ClipfitError(f"{path}: weight {k} holds {n} non-finite value(s) (NaN or infinity); the weights are "
                               "unusable: train the run again")


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save tensors as safetensors, atomically."""
    atomic_write_bytes(path, tensors_to_bytes(tensors, metadata))


def load_tensors(path: str | os.PathLike, finite: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; one-line errors for a missing, damaged or foreign file and (`finite`) for
    NaN or infinite weights."""
    tensors, _ = tensors_from_bytes(read_bytes(path, "weights file"), path)
    if finite:
        check_finite(tensors, path)
    return tensors

"""The run directory: every file a run writes, where it lives, how it is read and written.

RUN_DIR/
  config.json             model, dataset, method and training settings, classes, template(s), seed, versions
  items.json              the exact training and validation items ([key, label, classname]) used
  tuned.safetensors       the tuned weights only (the backbone is reloaded from `model`)
  metrics.json            validation (selection) and test accuracy, training history
  log.txt                 one line per epoch
  checkpoint.safetensors  while training: the state after the last finished epoch (removed when the run finishes)

Weights are safetensors only (no pickle is read); every file is written atomically.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..data.types import Item
from ..errors import ClipfitError
from ..io import load_tensors, read_json, save_tensors, write_json

FORMAT = 1


def items_to_json(items: list[Item]) -> list[list]:
    return [[it.key, it.label, it.classname] for it in items]


def items_from_json(rows: list[list]) -> list[Item]:
    return [Item(str(k), int(y), str(c)) for k, y, c in rows]


class RunDir:
    """One run directory (it need not exist yet)."""

    CONFIG, ITEMS, TUNED, METRICS, LOG, CHECKPOINT = (
        "config.json", "items.json", "tuned.safetensors", "metrics.json", "log.txt", "checkpoint.safetensors")
    FILES = (CONFIG, ITEMS, TUNED, METRICS, LOG, CHECKPOINT)

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    # -- state -------------------------------------------------------------------------------------------------
    @property
    def is_run(self) -> bool:
        return self.file(self.CONFIG).exists()

    @property
    def is_finished(self) -> bool:
        """Training finished: the tuned weights and the metrics are written."""
        return self.file(self.TUNED).exists() and self.file(self.METRICS).exists()

    @property
    def has_checkpoint(self) -> bool:
        return self.file(self.CHECKPOINT).exists()

    def require_trained(self) -> None:
        """A one-line error unless this directory holds a trained run."""
        if not self.is_run:
            raise ClipfitError(f"{self.path} is not a run directory (no {self.CONFIG}); give the --out of `clipfit train`")
        if not self.file(self.TUNED).exists():
            raise ClipfitError(f"{self.path} has no {self.TUNED}: the run did not finish; train it again with --overwrite "
                               "or continue it with --resume")

    def prepare(self, overwrite: bool = False, resume: bool = False) -> None:
        """Make the directory ready for a new run (or for resuming one)."""
        if self.path.exists() and any(self.path.iterdir()) and not resume:
            if not overwrite:
                raise ClipfitError(f"run directory {self.path} already exists and is not empty; choose another --out, "
                                   "pass --resume to continue an interrupted run, or --overwrite to replace it")
            for name in self.FILES:
                self.file(name).unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)

    # -- JSON files --------------------------------------------------------------------------------------------
    def read_config(self) -> dict:
        return read_json(self.file(self.CONFIG))

    def write_config(self, config: dict) -> None:
        write_json(self.file(self.CONFIG), {"format": FORMAT, **config})

    def read_items(self) -> dict[str, list[Item]]:
        rec = read_json(self.file(self.ITEMS))
        return {"train": items_from_json(rec["train"]), "val": items_from_json(rec.get("val", []))}

    def write_items(self, train: list[Item], val: list[Item]) -> None:
        write_json(self.file(self.ITEMS), {"train": items_to_json(train), "val": items_to_json(val)})

    def read_metrics(self) -> dict | None:
        return read_json(self.file(self.METRICS)) if self.file(self.METRICS).exists() else None

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.file(self.METRICS), metrics)

    @contextlib.contextmanager
    def logger(self) -> Iterator[Callable[[str], None]]:
        """A function that appends one line to log.txt (flushed at once)."""
        with open(self.file(self.LOG), "a", encoding="utf-8") as f:
            def log(line: str) -> None:
                f.write(line + "\n")
                f.flush()

            yield log

    # -- weights -----------------------------------------------------------------------------------------------
    def read_tuned(self) -> dict[str, torch.Tensor]:
        return load_tensors(self.file(self.TUNED))

    def write_tuned(self, tensors: dict[str, torch.Tensor], method: str) -> None:
        save_tensors(self.file(self.TUNED), tensors, metadata={"method": method, "format": str(FORMAT)})

    def backbone_weights(self) -> dict[str, torch.Tensor]:
        """The tuned weights of this run that are backbone parameters (name as in the backbone model)."""
        prefix = "backbone.model."
        return {k[len(prefix):]: t for k, t in self.read_tuned().items() if k.startswith(prefix)}

    # -- checkpoint --------------------------------------------------------------------------------------------
    def save_checkpoint(self, tuned: dict[str, torch.Tensor], opt: torch.optim.Optimizer, epoch: int, best: dict,
                        history: list[dict]) -> None:
        """Everything needed to continue training after `epoch`: tuned weights, optimiser state, best so far."""
        tensors = {f"param/{n}": t for n, t in tuned.items()}
        if best["state"] is not None:
            tensors.update({f"best/{n}": t for n, t in best["state"].items()})
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                tensors[f"opt/{i}/{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
        meta = {"epoch": epoch, "best_acc": best["acc"], "best_epoch": best["epoch"], "history": history}
        save_tensors(self.file(self.CHECKPOINT), tensors, metadata={"clipfit_checkpoint": json.dumps(meta)})

    def load_checkpoint(self, opt: torch.optim.Optimizer) -> tuple[int, dict[str, torch.Tensor], dict, list[dict]]:
        """Restore the optimiser from the checkpoint; returns (epochs done, tuned weights, best so far, history)."""
        from safetensors import safe_open

        path = self.file(self.CHECKPOINT)
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["clipfit_checkpoint"])
        tensors = load_tensors(path)
        tuned = {k[6:]: v for k, v in tensors.items() if k.startswith("param/")}
        best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best/")} or None
        sd = opt.state_dict()
        state: dict[int, dict[str, Any]] = {}
        for k, v in tensors.items():
            if k.startswith("opt/"):
                _, i, name = k.split("/", 2)
                state.setdefault(int(i), {})[name] = v
        sd["state"] = state
        opt.load_state_dict(sd)
        return meta["epoch"], tuned, {"acc": meta["best_acc"], "epoch": meta["best_epoch"], "state": best_state}, \
            meta["history"]

    def drop_checkpoint(self) -> None:
        self.file(self.CHECKPOINT).unlink(missing_ok=True)

"""What training does to the tuned parameters, recorded when asked (`record=change,grads,steps`; off by default).

- change: per parameter (a layer's gain, bias, ...), the squared distance from its value before training,
  ||p - p0||^2, after every epoch (CLIPFit Figures 3, 7-10; train with and without `reg` to compare);
- grads: per parameter, the sum over the epoch's steps of its squared gradient (CLIPFit Figures 4 and 11 left);
  the gradient back-propagation gave (before `grad_clip`, when set);
- steps: the change of every tuned parameter before every optimiser step and after the last (Figure 11 right).

The recorder hooks the method's own hooks (`on_train_start`, `backward`, `on_epoch_end`, `on_train_end`) on the one
instance being trained; the training loop is unchanged and nothing runs when `record` is empty. It writes
record.json into the run directory after every epoch (an interrupted run resumed from its checkpoint continues it),
and record.csv, one line per (what, epoch or step, parameter), when training ends.

Layers: a parameter's *series* groups the same parameter of repeated modules of a tower (every LayerNorm of the image
encoder is one series per gain and bias, in depth order: layer 1 is the first LayerNorm, the patch-embedding one on
ViT; every FFN output bias of the text encoder is another), and its *layer* is its 1-based position in that series.
"""
from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import torch
from torch import nn

from ..errors import ClipfitError
from ..method.base import Method, Step
from .rundir import RunDir

KINDS = ("change", "grads", "steps")
RECORD_JSON, RECORD_CSV = "record.json", "record.csv"


def parse_record(text: str) -> list[str]:
    """The kinds a `record` setting names ('' = none), or a one-line error."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ClipfitError(f"setting record={text!r}: {bad[0]!r} is not recorded; choose from {', '.join(KINDS)} "
                           "(comma-separated)")
    return kinds


def recorded_change(run_dir: str, setting: str) -> dict[str, float]:
    """Backbone parameter name -> its final recorded change ||p - p0||^2 in a run trained with record=change (what a
    `layers_from` setting names: CLIPFit's topK layers rank by it)."""
    run = RunDir(run_dir)
    if not run.file(RECORD_JSON).exists():
        raise ClipfitError(f"setting {setting}={run_dir}: no {RECORD_JSON} there; train that run with "
                           "--set record=change")
    rec = json.loads(run.read_file(RECORD_JSON))
    if not rec.get("epochs") or "change" not in rec["epochs"][-1]:
        raise ClipfitError(f"setting {setting}={run_dir}: that run did not record change (record=change)")
    return {n.removeprefix("backbone.model."): v for n, v in zip(rec["params"], rec["epochs"][-1]["change"])}


def series_of(model: nn.Module, names: list[str]) -> dict[str, list[str]]:
    """Series name -> its parameter names in depth order (see the module doc), for `names` of `model`'s parameters.
    Names outside the backbone's CLIP model (a method's own modules) are one series each."""
    modules = dict(model.named_modules())
    out: dict[str, list[str]] = {}
    for full in names:
        name = full.removeprefix("backbone.model.")
        path, _, leaf = name.rpartition(".")
        mod = modules.get(path) if name != full else None
        if mod is None:
            out.setdefault(full, []).append(full)
            continue
        tower = "text" if name.startswith("text") else "image" if name.startswith(("vision", "visual")) else "model"
        kind = "LayerNorm" if isinstance(mod, nn.LayerNorm) else \
            re.sub(r"^encoder\.layers\.#\.", "", re.sub(r"\.\d+\.", ".#.", path.split(".", 1)[-1]))
        out.setdefault(f"{tower} {kind} {leaf}", []).append(full)
    return out


def layer_table(record: dict) -> list[dict[str, Any]]:
    """One row per recorded parameter: series, layer (1-based), parameter, and its final change and gradient sum."""
    params = record["params"]
    last = record["epochs"][-1] if record["epochs"] else {}
    grads = [sum(e["grad_sq"][i] for e in record["epochs"]) for i in range(len(params))] if \
        record["epochs"] and "grad_sq" in record["epochs"][0] else None
    rows = []
    for series, names in record["series"].items():
        for layer, n in enumerate(names, 1):
            i = params.index(n)
            rows.append({"series": series, "layer": layer, "param": n,
                         "change": last["change"][i] if "change" in last else None,
                         "grad_sq_sum": grads[i] if grads else None})
    return rows


class Recorder:
    """Records what `record` names for one method instance while it trains (see the module doc)."""

    def __init__(self, method: Method[Any], kinds: list[str], run: RunDir | None):
        self.method, self.kinds, self.run = method, kinds, run
        self.params = dict(method.trainable())
        self.names = list(self.params)
        self.p0: dict[str, torch.Tensor] = {}
        self.grad_sq = [0.0] * len(self.names)
        self.record: dict[str, Any] = {"kinds": kinds, "params": self.names,
                                       "series": series_of(method.backbone.model, self.names),
                                       "epochs": [], "steps": []}
        self.resumed_from: int | None = None
        self.loaded_steps = 0
        for hook in ("on_train_start", "backward", "on_epoch_end", "on_train_end"):
            setattr(method, hook, getattr(self, hook + "_hook")(getattr(method, hook)))

    @classmethod
    def attach(cls, method: Method[Any], record: str, run: RunDir | None) -> Recorder | None:
        kinds = parse_record(record)
        return cls(method, kinds, run) if kinds else None

    @torch.no_grad()
    def change(self) -> list[float]:
        return [float(((self.params[n].float() - self.p0[n]) ** 2).sum()) for n in self.names]

    # -- the method's hooks, wrapped ---------------------------------------------------------------------------
    def on_train_start_hook(self, inner):
        def hook() -> None:
            inner()  # p0: the weights training starts from (after init_from and the seeded initialisation)
            self.p0 = {n: p.detach().float().clone() for n, p in self.params.items()}
            if self.run is not None and self.run.file(RECORD_JSON).exists():  # resuming: keep what was recorded
                self.record.update({k: json.loads(self.run.read_file(RECORD_JSON))[k] for k in ("epochs", "steps")})
            self.loaded_steps = len(self.record["steps"])
        return hook

    def backward_hook(self, inner):
        def hook(step: Step) -> None:
            if "steps" in self.kinds:
                self.record["steps"].append({"step": len(self.record["steps"]), "change": self.change()})
            inner(step)
            if "grads" in self.kinds:
                for i, n in enumerate(self.names):
                    g = self.params[n].grad
                    if g is not None:
                        self.grad_sq[i] += float((g.float() ** 2).sum())
        return hook

    def on_epoch_end_hook(self, inner):
        def hook(epoch: int, epochs: int) -> None:
            inner(epoch, epochs)
            rec = self.record
            if self.resumed_from is None:  # the first epoch of this process: drop what a resumed run redoes
                self.resumed_from = epoch
                rec["epochs"] = [e for e in rec["epochs"] if e["epoch"] < epoch]
                cut = rec["epochs"][-1]["step"] if rec["epochs"] else 0
                rec["steps"] = rec["steps"][:cut] + rec["steps"][self.loaded_steps:]
                for i, s in enumerate(rec["steps"]):
                    s["step"] = i
            entry: dict[str, Any] = {"epoch": epoch, "step": len(rec["steps"])}
            if "change" in self.kinds:
                entry["change"] = self.change()
            if "grads" in self.kinds:
                entry["grad_sq"], self.grad_sq = self.grad_sq, [0.0] * len(self.names)
            rec["epochs"].append(entry)
            if self.run is not None:
                self.run.write_file(RECORD_JSON, json.dumps(rec).encode(), durable=False)
        return hook

    def on_train_end_hook(self, inner):
        def hook() -> None:
            inner()
            if "steps" in self.kinds:
                self.record["steps"].append({"step": len(self.record["steps"]), "change": self.change()})
            if self.run is not None:
                self.run.write_file(RECORD_JSON, json.dumps(self.record).encode())
                self.run.write_file(RECORD_CSV, to_csv(self.record).encode())
        return hook


def to_csv(record: dict) -> str:
    """Long form: what (change, grad_sq, step_change), epoch, step, series, layer, param, value."""
    where = {n: (s, i) for s, names in record["series"].items() for i, n in enumerate(names, 1)}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["what", "epoch", "step", "series", "layer", "param", "value"])
    for e in record["epochs"]:
        for what in ("change", "grad_sq"):
            for n, v in zip(record["params"], e.get(what, [])):
                w.writerow([what, e["epoch"], e["step"], *where[n], n, f"{v:.6g}"])
    for s in record["steps"]:
        for n, v in zip(record["params"], s["change"]):
            w.writerow(["step_change", "", s["step"], *where[n], n, f"{v:.6g}"])
    return buf.getvalue()


def tensorboard_writer():
    """torch's SummaryWriter, or a one-line error saying what to install."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ClipfitError("setting log=tensorboard needs the tensorboard package: pip install 'clipfit[tensorboard]'"
                           ) from None
    return SummaryWriter


def write_tensorboard(run: RunDir, history: list[dict], record: dict | None) -> list[str]:
    """The training curves (every number of each epoch's history line: loss, its parts, lr, val_accuracy) and what
    `record` recorded (per parameter: change/SERIES/layerN, grad_sq/..., step_change/...) as TensorBoard event files
    in RUN_DIR/tensorboard/, written through the run directory (checksummed). Returns their names."""
    import tempfile
    from pathlib import Path

    writer_cls = tensorboard_writer()
    with tempfile.TemporaryDirectory() as tmp:
        w = writer_cls(log_dir=tmp)
        for rec in history:
            for k, v in rec.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    w.add_scalar(f"train/{k}", v, rec["epoch"])
        if record:
            where = {n: f"{s}/layer{i}" for s, names in record["series"].items() for i, n in enumerate(names, 1)}
            params = record["params"]
            for e in record["epochs"]:
                for what in ("change", "grad_sq"):
                    for n, v in zip(params, e.get(what, [])):
                        w.add_scalar(f"{what}/{where[n]}", v, e["epoch"])
            for s in record["steps"]:
                for n, v in zip(params, s["change"]):
                    w.add_scalar(f"step_change/{where[n]}", v, s["step"])
        w.close()
        names = []
        for f in sorted(Path(tmp).rglob("*")):
            if f.is_file():
                name = f"tensorboard/{f.relative_to(tmp).as_posix()}"
                run.write_file(name, f.read_bytes())
                names.append(name)
    return names

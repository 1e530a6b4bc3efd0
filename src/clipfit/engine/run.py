"""Run directories: train a method and write everything needed to audit, reload and repeat the run.

RUN_DIR/
  config.json        model, dataset, method and training settings, classes, template(s), seed, versions
  items.json         the exact training and validation items ([key, label, classname]) used
  tuned.safetensors  the tuned weights only (the backbone is reloaded from `model`)
  metrics.json       validation (selection) and test accuracy, training history
  log.txt            one line per epoch
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..backbone import EMBEDDED_MODEL, Backbone
from ..config import TrainConfig, apply_overrides, to_dict
from ..data.catalogue import load_task
from ..data.sampling import fewshot, subsample_classes
from ..data.types import Item, Task
from ..errors import ClipfitError
from ..io import load_tensors, read_json, save_tensors, write_json
from ..methods import METHODS, Method, build_method
from .loop import CHECKPOINT, evaluate, fit, pick_device

FORMAT = 1


@dataclass
class RunSpec:
    """Everything that defines a training run."""

    dataset: str
    method: str = "clipfit"
    model: str = EMBEDDED_MODEL
    root: str | None = None
    shots: int = 16
    seed: int = 1
    subsample: str = "all"
    protocol: str = ""  # '' -> fewshot when subsample=all, base2new otherwise
    template: str | None = None  # overrides the dataset's template
    overrides: list[str] = field(default_factory=list)  # '--set key=value' strings
    items: str | None = None  # items.json of an earlier run: reuse its training/validation items
    device: str | None = None


def _model_ref(model: str) -> str:
    """Store local model directories as absolute paths so the run reloads from anywhere."""
    return str(Path(model).resolve()) if model not in ("", EMBEDDED_MODEL, "mini") and os.path.isdir(model) else model


def _items_to_json(items: list[Item]) -> list[list]:
    return [[it.key, it.label, it.classname] for it in items]


def _items_from_json(rows: list[list]) -> list[Item]:
    return [Item(str(k), int(y), str(c)) for k, y, c in rows]


def prepare_task(spec: RunSpec) -> Task:
    """Load the dataset, draw the few-shot sets (or reuse recorded ones), and apply the base/new split."""
    task = load_task(spec.dataset, spec.root)
    if spec.items:
        rec = read_json(spec.items)
        task = task.with_splits(train=_items_from_json(rec["train"]), val=_items_from_json(rec.get("val", [])))
    else:
        task = fewshot(task, spec.shots, spec.seed)
    task = subsample_classes(task, spec.subsample)
    if spec.template:
        if "{}" not in spec.template:
            raise ClipfitError(f"--template {spec.template!r} has no '{{}}' where the class name goes")
        task = task.with_splits(template=spec.template)
    return task


def resolve_configs(spec: RunSpec) -> tuple[Any, TrainConfig]:
    cls = METHODS.get(spec.method)
    mcfg = cls.Config()
    tcfg = TrainConfig(**cls.train_defaults)
    protocol = spec.protocol or ("fewshot" if spec.subsample == "all" else "base2new")
    defaults = [f"{k}={v}" for k, v in cls.protocol_defaults(protocol, spec.dataset).items()]
    apply_overrides([mcfg, tcfg], defaults + list(spec.overrides))
    return mcfg, tcfg


def prepare_out_dir(out: str | os.PathLike, overwrite: bool, resume: bool = False) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise ClipfitError(f"run directory {out} already exists and is not empty; choose another --out, "
                               "pass --resume to continue an interrupted run, or --overwrite to replace it")
        for name in ("config.json", "items.json", "tuned.safetensors", "metrics.json", "log.txt", CHECKPOINT):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def train_run(spec: RunSpec, out: str | os.PathLike, overwrite: bool = False, progress: bool = True,
              test: bool = True, backbone: Backbone | None = None, resume: bool = False) -> dict:
    """Train, select on validation, save the run directory, and (optionally) report test accuracy once.

    The state after every epoch is kept in RUN/checkpoint.safetensors until the run finishes; `resume=True`
    continues an interrupted run from there, on the items recorded in RUN/items.json, with its recorded settings.
    """
    if resume:
        spec = _resume_spec(spec, Path(out))
    mcfg, tcfg = resolve_configs(spec)
    task = prepare_task(spec)
    if not task.train and tcfg.epochs > 0:
        raise ClipfitError(f"dataset {spec.dataset!r} has no training split (a test-only set); train on another dataset")
    out = prepare_out_dir(out, overwrite, resume)
    device = pick_device(spec.device)
    backbone = backbone or Backbone.from_pretrained(spec.model, device=device)
    method = build_method(spec.method, backbone, task.classnames, task.template, mcfg).to(device)
    config = {
        "format": FORMAT, "clipfit_version": __version__, "torch_version": torch.__version__,
        "python": platform.python_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": _model_ref(spec.model), "dataset": spec.dataset, "root": str(Path(spec.root).resolve()) if spec.root else None,
        "method": spec.method, "shots": spec.shots, "seed": spec.seed, "subsample": spec.subsample,
        "protocol": spec.protocol or ("fewshot" if spec.subsample == "all" else "base2new"),
        "classnames": task.classnames, "templates": method.templates,
        "method_config": to_dict(mcfg), "train_config": to_dict(tcfg), "overrides": list(spec.overrides),
        "trainable_parameters": method.num_trainable(),
    }
    write_json(out / "config.json", config)
    write_json(out / "items.json", {"train": _items_to_json(task.train), "val": _items_to_json(task.val)})
    with open(out / "log.txt", "a", encoding="utf-8") as logf:
        def log(line: str) -> None:
            logf.write(line + "\n")
            logf.flush()

        summary = fit(method, task, tcfg, spec.seed, device, log=log, progress=progress, checkpoint_dir=out,
                      resume=resume)
    save_tensors(out / "tuned.safetensors", method.tuned_state(), metadata={"method": spec.method, "format": str(FORMAT)})
    (out / CHECKPOINT).unlink(missing_ok=True)
    metrics: dict[str, Any] = {"val_accuracy": summary["val_accuracy"], "best_epoch": summary["best_epoch"],
                               "train_seconds": summary["train_seconds"], "trainable_parameters": method.num_trainable()}
    if test and task.test:
        metrics["test"] = {spec.subsample: evaluate(method, task, task.test, tcfg, device, progress, "test")}
    metrics["history"] = summary["history"]
    write_json(out / "metrics.json", metrics)
    return metrics


def _resume_spec(spec: RunSpec, out: Path) -> RunSpec:
    """The spec of the interrupted run in `out` (its recorded settings and items win over the new command's)."""
    if not (out / CHECKPOINT).exists() or not (out / "config.json").exists():
        raise ClipfitError(f"nothing to resume in {out}: no {CHECKPOINT} (the run finished, or never completed an epoch)")
    cfg = read_json(out / "config.json")
    return RunSpec(dataset=cfg["dataset"], method=cfg["method"], model=cfg["model"], root=cfg.get("root"),
                   shots=cfg["shots"], seed=cfg["seed"], subsample=cfg["subsample"], protocol=cfg["protocol"],
                   template=cfg["templates"][0] if len(cfg["templates"]) == 1 else None,
                   overrides=cfg["overrides"], items=str(out / "items.json"), device=spec.device)


@dataclass
class LoadedRun:
    method: Method
    config: dict
    train_config: TrainConfig
    device: torch.device


def load_run(run_dir: str | os.PathLike, device: str | None = None, backbone: Backbone | None = None) -> LoadedRun:
    """Rebuild a trained method from its run directory (backbone from `model`, then the tuned weights)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise ClipfitError(f"{run_dir} is not a run directory (no config.json); give the --out of `clipfit train`")
    if not (run_dir / "tuned.safetensors").exists():
        raise ClipfitError(f"{run_dir} has no tuned.safetensors: the run did not finish; train it again with --overwrite")
    config = read_json(run_dir / "config.json")
    dev = pick_device(device)
    cls = METHODS.get(config["method"])
    mcfg = cls.Config(**config["method_config"])
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    tcfg = TrainConfig(**{k: v for k, v in config["train_config"].items() if k in fields})
    backbone = backbone or Backbone.from_pretrained(config["model"], device=dev)
    method = build_method(config["method"], backbone, config["classnames"], config["templates"], mcfg).to(dev)
    method.load_tuned(load_tensors(run_dir / "tuned.safetensors"))
    method.eval()
    return LoadedRun(method, config, tcfg, dev)


def eval_run(run_dir: str | os.PathLike, dataset: str | None = None, root: str | None = None,
             subsample: str | None = None, split: str = "test", device: str | None = None, progress: bool = True,
             loaded: LoadedRun | None = None) -> dict:
    """Accuracy of a trained run on a dataset split (default: the run's own dataset and classes)."""
    run = loaded or load_run(run_dir, device)
    cfg = run.config
    dataset = dataset or cfg["dataset"]
    subsample = subsample or cfg["subsample"]
    task = subsample_classes(load_task(dataset, root or cfg.get("root")), subsample)
    if dataset != cfg["dataset"] and run.method.uses_dataset_template:  # another dataset: its own template
        run.method.templates = [task.template]
    if task.classnames != run.method.classnames or dataset != cfg["dataset"]:
        if not run.method.class_agnostic:
            raise ClipfitError(f"method {cfg['method']!r} learned class-specific weights; it cannot classify the classes of {dataset} ({subsample})")
        run.method.set_classes(task.classnames)
    items = {"test": task.test, "val": task.val, "train": task.train}.get(split)
    if items is None:
        raise ClipfitError(f"--split must be test, val or train, not {split!r}")
    res = evaluate(run.method, task, items, run.train_config, run.device, progress, split)
    return {"dataset": dataset, "subsample": subsample, "split": split, **res}

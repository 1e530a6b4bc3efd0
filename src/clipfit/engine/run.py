"""Training runs: resolve a run's settings, train, write the run directory (`rundir`), reload and evaluate it."""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..backbone import EMBEDDED_MODEL, Backbone, input_spec
from ..config import TrainConfig, to_dict
from ..data.catalogue import load_task, rules_dataset
from ..data.images import check_images
from ..data.sampling import fewshot, subsample_classes
from ..data.transforms import cache_side
from ..data.types import Item, Task, check_template
from ..errors import ClipfitError
from ..hub import model_source
from ..io import read_json
from ..method import METHODS, Method, MethodConfig, build_method
from ..progress import is_terminal, status, warn
from ..recipes import Context, validation_shots
from ..version import version
from . import distributed
from .loop import FitResult, evaluate, fit, pick_device
from .record import Recorder, parse_record, recorded_change, tensorboard_writer, write_tensorboard
from .rundir import RunDir
from .support import check_method_on_model


@dataclass
class RunSpec:
    """Everything that defines a training run. `settings` are typed method and training settings."""

    dataset: str
    method: str = "clipfit"
    model: str = EMBEDDED_MODEL
    root: str | None = None
    shots: int = 16
    seed: int = 1
    subsample: str = "all"
    protocol: str = ""  # '' -> fewshot when subsample=all, base2new otherwise
    template: str | None = None  # overrides the dataset's template
    settings: dict[str, Any] = field(default_factory=dict)
    items: str | None = None  # items.json of an earlier run: reuse its training/validation items
    device: str | None = None

    @property
    def resolved_protocol(self) -> str:
        return self.protocol or ("fewshot" if self.subsample == "all" else "base2new")


def _dataset_ref(dataset: str) -> str:
    """A dataset reference that works from any directory: an `imagefolder:` or `hf:` path that exists, absolute."""
    prefix, sep, rest = dataset.partition(":")
    if sep and prefix in ("imagefolder", "hf"):
        path, hash_, opts = rest.partition("#")
        full = os.path.expanduser(path)
        if os.path.exists(full):
            return f"{prefix}:{os.path.abspath(full)}{hash_}{opts}"
    return dataset


def _model_ref(model: str | None) -> str:
    """A model reference that reloads from anywhere: local directories as absolute paths."""
    if model in (None, "", EMBEDDED_MODEL, "mini"):
        return EMBEDDED_MODEL
    return str(Path(model).resolve()) if os.path.isdir(model) else str(model)


def prepare_task(spec: RunSpec) -> Task:
    """Load the dataset, draw the few-shot sets (or reuse recorded ones, `read_items`), and apply the base/new split.
    Validation images per class: the run's `val_shots`, by default the protocol's rule (`recipes.validation_shots`)."""
    task = load_task(spec.dataset, spec.root)
    if spec.items:  # a run records its items after the base/new split, with its labels
        task = subsample_classes(task, spec.subsample)
        task = task.with_splits(**read_items(spec.items, task))
    else:
        task = subsample_classes(fewshot(task, spec.shots, spec.seed, resolve_configs(spec)[1].val_shots),
                                 spec.subsample)
    if spec.template:
        task = task.with_splits(template=check_template(spec.template, "--template"))
    return task


def read_items(path: str, task: Task) -> dict[str, list[Item]]:
    """{"train", "val"}: the items of an items.json (a run's own is checked against its manifest), every entry checked
    against `task` before anything trains: a label among its classes, with its class name, on an image of the
    dataset that the dataset labels alike (for an image folder: the image's class folder) and that is no test image;
    one line naming the first bad entry."""
    p = Path(path)
    raw = RunDir(p.parent)._read_json(RunDir.ITEMS) if p.name == RunDir.ITEMS else read_json(p)
    if not isinstance(raw, dict) or not isinstance(raw.get("train"), list) or not isinstance(raw.get("val", []), list):
        raise ClipfitError(f"--items {path} is not a list of training items ({{\"train\": [[image, label, class "
                           "name], ...], \"val\": [...]}); give the items.json of a run")
    known = {it.key: it for it in task.test + task.val + task.train}
    test_only = {it.key for it in task.test} - {it.key for it in task.train + task.val}
    n = len(task.classnames)
    out: dict[str, list[Item]] = {}
    for split in ("train", "val"):
        seen: set[str] = set()
        for i, row in enumerate(raw.get(split, [])):
            why = None
            if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str) and isinstance(row[2], str)
                    and isinstance(row[1], int) and not isinstance(row[1], bool)):
                why = "expected [image, label, class name]"
            elif not 0 <= row[1] < n:
                why = f"label {row[1]} is outside 0..{n - 1} (the {n} classes of {task.name})"
            elif row[2] != task.classnames[row[1]]:
                why = f"label {row[1]} is class {task.classnames[row[1]]!r} in {task.name}, not {row[2]!r}"
            elif row[0] not in known:
                why = f"{row[0]!r} is not an image of {task.name}"
            elif known[row[0]].label != row[1]:
                why = f"{task.name} labels that image {known[row[0]].label} ({known[row[0]].classname!r})"
            elif row[0] in test_only:
                why = f"{row[0]!r} is a test image of {task.name} (training on it would inflate the test accuracy)"
            elif row[0] in seen:
                why = f"{row[0]!r} is listed twice"
            if why:
                raise ClipfitError(f"--items {path}: {split} entry {i + 1} {row!r}: {why}; fix the file, or train "
                                   "without --items")
            seen.add(row[0])
        out[split] = [Item(*row) for row in raw.get(split, [])]
    return out


def run_context(spec: RunSpec) -> Context:
    """What recipe rules see of a run: its protocol, canonical dataset name (aliases resolved; a split variant or
    stand-in: the dataset it stands for, `rules_dataset`) and shots."""
    return Context(spec.resolved_protocol, rules_dataset(spec.dataset), spec.shots)


def resolve_configs(spec: RunSpec) -> tuple[Any, TrainConfig]:
    """(method config, training config): defaults < recipe < its rules for this protocol, dataset, shots < preset <
    the spec's settings. The validation size, unless set, is the protocol's (`recipes.validation_shots`)."""
    mcfg, tcfg = METHODS.get(spec.method).configs(run_context(spec), spec.settings)
    if tcfg.val_shots is None and spec.shots > 0:  # shots <= 0: every training and validation image
        tcfg = dataclasses.replace(tcfg, val_shots=validation_shots(run_context(spec)))
    return mcfg, tcfg


def init_weights(run_dir: str, backbone: Backbone) -> dict[str, torch.Tensor]:
    """The backbone weights a first-stage run tuned (two-stage training, `init_from=RUN_DIR`)."""
    first = RunDir(run_dir)
    if not first.file(RunDir.TUNED).exists():
        raise ClipfitError(f"init_from={run_dir}: no {RunDir.TUNED} there; train the first stage (e.g. `clipfit train "
                           "--method layernorm --out DIR`) and pass its run directory")
    if first.is_run and _model_ref(first.read_config().get("model")) != _model_ref(backbone.source):
        raise ClipfitError(f"init_from={run_dir}: that run adapted model {first.read_config().get('model')!r}, this one "
                           f"is {backbone.source!r}; a first stage must use the same model")
    weights = first.backbone_weights()
    if not weights:
        raise ClipfitError(f"init_from={run_dir}: that run tuned no weights of the backbone (use a run of a method such "
                           "as layernorm, bitfit or clipfit)")
    return weights


def make_method(name: str, backbone: Backbone, classnames: Sequence[str], templates: str | Sequence[str],
                mcfg: MethodConfig, init: Mapping[str, torch.Tensor] | None = None) -> Method[Any]:
    """`build_method`, given what the method's settings name on disk: the first stage's weights (`init`, read by
    `init_weights`), and the recorded change of the run a `layers_from` setting names (CLIPFit's topK layers)."""
    layers_from = getattr(mcfg, "layers_from", "")
    change = recorded_change(layers_from, "layers_from") if layers_from else None
    return build_method(name, backbone, classnames, templates, mcfg, init, change)


def _resume_spec(spec: RunSpec, target: RunDir) -> RunSpec:
    """The spec of the interrupted run of `target` (its recorded settings and items win over the new command's)."""
    run = target.checkpoint_dir
    if run is None or not run.is_run:
        raise ClipfitError(f"nothing to resume in {target.path}: no {RunDir.CHECKPOINT} (the run finished, or never "
                           "completed an epoch)")
    cfg = run.read_config()
    return RunSpec(dataset=cfg["dataset"], method=cfg["method"], model=cfg["model"], root=cfg.get("root"),
                   shots=cfg["shots"], seed=cfg["seed"], subsample=cfg["subsample"], protocol=cfg["protocol"],
                   template=cfg["templates"][0] if len(cfg["templates"]) == 1 else None,
                   settings=recorded_settings(cfg), items=str(run.file(RunDir.ITEMS)), device=spec.device)


def read_paths(spec: RunSpec, task: Task, mcfg: Any) -> list[tuple[str, str]]:
    """What a run reads from disk ((what, path) pairs): its images, dataset and root, its model folder, the first stage
    it starts from. Its run directory may be none of them, nor contain one (`RunDir.check_target`)."""
    out = []
    images = getattr(task.reader, "root", None)
    if images is not None:
        out.append(("the folder of the training images", str(images)))
    prefix, sep, rest = spec.dataset.partition(":")
    if sep and prefix in ("imagefolder", "hf") and os.path.exists(os.path.expanduser(rest.partition("#")[0])):
        out.append(("the dataset", os.path.expanduser(rest.partition("#")[0])))
    if spec.root:
        out.append(("the dataset root (--root)", spec.root))
    if os.path.isdir(spec.model):
        out.append(("the model", spec.model))
    if mcfg.init_from:
        out.append(("the first stage (init_from)", mcfg.init_from))
    return out


def recorded_settings(config: dict) -> dict[str, Any]:
    """The user's settings a run recorded (runs of clipfit 0.1 recorded them as 'key=value' strings)."""
    if "settings" in config:
        return dict(config["settings"])
    from ..config import parse_settings

    entry = METHODS.get(config["method"])
    return parse_settings(config.get("overrides", []), [entry.cls.Config, TrainConfig])


@dataclass
class CheckedRun:
    """A run whose settings, data and images were checked (`check_run`), before anything is written."""

    spec: RunSpec
    mcfg: MethodConfig
    tcfg: TrainConfig
    task: Task
    protect: list[tuple[str, str]]  # what the run reads: its run directory may not hold any of it
    device: torch.device


def check_run(spec: RunSpec, run: RunDir, overwrite: bool, resume: bool, test: bool, backbone: Backbone | None,
              echo: Callable[[str], None]) -> CheckedRun:
    """Everything `train_run` checks before it writes: the settings, the dataset and its few-shot sets, the target
    directory, the device, the model's source, every image (`resume`: the interrupted run's recorded spec)."""
    if resume:
        spec = _resume_spec(spec, run)
    if spec.shots < 0:
        raise ClipfitError(f"--shots {spec.shots}: must be >= 0 (0: every training image)")
    mcfg, tcfg = resolve_configs(spec)
    check_method_on_model(spec.method, spec.model, backbone)  # the model's family, and the method on it: one line now
    parse_record(tcfg.record)
    if tcfg.log == "tensorboard":
        tensorboard_writer()
    task = prepare_task(spec)
    if not task.train and tcfg.epochs > 0:
        if spec.items:
            raise ClipfitError(f"--items {spec.items} lists no training items; give the items.json of a run that "
                               "trained")
        raise ClipfitError(f"dataset {spec.dataset!r} has no training split (a test-only set); train on another dataset")
    protect = read_paths(spec, task, mcfg)
    run.check_target(overwrite, resume, protect)
    device = pick_device(spec.device)
    alone = distributed.single_under_launcher()
    if distributed.current().is_main and alone:
        warn(alone)
    if tcfg.batch_size > len(task.train) > 0:
        echo(f"batch_size={tcfg.batch_size} is more than the {len(task.train)} training images: a batch holds them all")
    if backbone is None:
        model_source(spec.model)  # a missing folder or an unreachable hub: one line now, not after the images
    spec_in = backbone.image_spec if backbone is not None else input_spec(spec.model)
    task = check_images(task, echo, test=test, keep_short=cache_side(spec_in) if spec_in else None)
    return CheckedRun(spec, mcfg, tcfg, task, protect, device)


def run_config(c: CheckedRun, method: Method[Any]) -> dict[str, Any]:
    """What config.json records of a run: the software, the run's spec, classes, templates and settings."""
    spec = c.spec
    return {
        "clipfit_version": version(), "torch_version": torch.__version__,
        "python": platform.python_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "torch_threads": torch.get_num_threads(),  # thread counts can change a result's last bits
        "processes": distributed.current().world,  # data-parallel processes (`accelerate launch`, `torchrun`)
        "model": _model_ref(spec.model), "dataset": _dataset_ref(spec.dataset),
        "root": str(Path(spec.root).resolve()) if spec.root else None,
        "method": spec.method, "shots": spec.shots, "seed": spec.seed, "subsample": spec.subsample,
        "protocol": spec.resolved_protocol, "classnames": c.task.classnames, "templates": method.templates,
        "method_config": to_dict(c.mcfg), "train_config": to_dict(c.tcfg), "settings": dict(spec.settings),
        "trainable_parameters": method.num_trainable(),
    }


def run_metrics(result: FitResult, c: CheckedRun, method: Method[Any]) -> dict[str, Any]:
    """What metrics.json records of training (the test accuracy and the history are added by `train_run`)."""
    metrics: dict[str, Any] = {"val_accuracy": result.val_accuracy, "best_epoch": result.best_epoch,
                               # the checkpoint rule that chose it (without a validation split: the last epoch)
                               "select": (c.tcfg.select if c.task.val else "last") if result.best_epoch is not None
                               else None,
                               "train_seconds": result.train_seconds, "trainable_parameters": method.num_trainable()}
    if result.validated:
        metrics["validated"] = result.validated  # which epochs have a val_accuracy in the history
    if result.extra:
        metrics["selected"] = result.extra
    return metrics


def train_run(spec: RunSpec, out: str | os.PathLike[str], overwrite: bool = False, progress: bool = True,
              test: bool = True, backbone: Backbone | None = None, resume: bool = False) -> dict[str, Any]:
    """Train, select on validation, save the run directory, and (optionally) report test accuracy once.

    Settings, data and every image are checked before anything is written. The run is written into a partial
    directory beside `out`, which replaces `out` only when the run finished (`rundir`); the state after every epoch
    is kept there in checkpoint.safetensors, and `resume=True` continues an interrupted run from it, exactly, on its
    recorded items and settings. Returns the metrics written to metrics.json.
    """
    run = RunDir(out)
    echo = status(progress)
    c = check_run(spec, run, overwrite, resume, test, backbone, echo)
    spec, tcfg, task, device = c.spec, c.tcfg, c.task, c.device
    dp = distributed.current()
    progress = progress and dp.is_main
    with distributed.transaction(run, overwrite, resume, c.protect) as work:
        if backbone is None:
            echo(f"loading model {spec.model}")
            backbone = Backbone.from_pretrained(spec.model, device=device)
        first_stage = init_weights(c.mcfg.init_from, backbone) if c.mcfg.init_from else None
        method = make_method(spec.method, backbone, task.classnames, task.template, c.mcfg, first_stage).to(device)
        method.size_for(len(task.train))  # parameters that grow with the training set exist before they are counted
        recorder = Recorder.attach(method, tcfg.record, work)  # None unless `record` asks
        if not resume:
            work.write_config(run_config(c, method))
            work.write_items(task.train, task.val)
        with work.logger() as write_log:
            tee = progress and not is_terminal()  # no progress bar on a pipe or file: a line per epoch instead

            def log(line: str) -> None:
                write_log(line)
                if tee:
                    echo(f"{spec.method} seed {spec.seed}: {line}")

            echo(f"training {spec.method} on {len(task.train)} images in {dp.world} process{'es' * (dp.world > 1)}")
            result = fit(method, task, tcfg, spec.seed, device, log=log, progress=progress, run=work, resume=resume)
        work.write_tuned(method.tuned_state(), spec.method)
        if tcfg.log == "tensorboard":
            write_tensorboard(work, result.history, recorder.record if recorder else None)
        metrics = run_metrics(result, c, method)
        if test and task.test:
            metrics["test"] = {spec.subsample: evaluate(method, task, task.test, tcfg, device, progress, "test")}
        metrics["history"] = result.history
        work.write_metrics(metrics)
        work.drop_checkpoint()
    return metrics


@dataclass
class LoadedRun:
    method: Method
    config: dict
    train_config: TrainConfig
    device: torch.device

    def reset(self) -> LoadedRun:
        """Back to the run's own classes and templates (an evaluation on another dataset changes them)."""
        m, cfg = self.method, self.config
        if m.templates != cfg["templates"] or m.classnames != cfg["classnames"]:
            m.templates = list(cfg["templates"])
            m.set_classes(cfg["classnames"])
        return self


def _method_config(entry, recorded: dict) -> Any:
    """The recorded method config as its dataclass (LLU runs of clipfit 0.1 named their ablation in a field)."""
    recorded = dict(recorded)
    ablation = recorded.pop("ablation", "none")
    if ablation != "none":
        recorded.update(METHODS.get(f"llu:{ablation}").preset)
    names = {f.name for f in dataclasses.fields(entry.cls.Config)}
    return entry.cls.Config(**{k: v for k, v in recorded.items() if k in names})


def load_run(run_dir: str | os.PathLike, device: str | None = None, backbone: Backbone | None = None) -> LoadedRun:
    """Rebuild a trained method from its run directory (backbone from `model`, then the tuned weights)."""
    run = RunDir(run_dir)
    run.require_trained()
    config = run.read_config()
    dev = pick_device(device)
    entry = METHODS.get(config["method"])
    try:
        mcfg = _method_config(entry, config["method_config"])
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        tcfg = TrainConfig(**{k: v for k, v in config["train_config"].items() if k in names})
    except (KeyError, TypeError, AttributeError) as e:
        raise ClipfitError(f"{run.file(RunDir.CONFIG)} lacks or garbles {e}: the file was changed or damaged; train "
                           "the run again") from None
    backbone = backbone or Backbone.from_pretrained(config["model"], device=dev)
    method = make_method(config["method"], backbone, config["classnames"], config["templates"], mcfg).to(dev)
    method.load_tuned(run.read_tuned())
    method.eval()
    return LoadedRun(method, config, tcfg, dev)


def class_subset(trained: list[str], wanted: list[str]) -> list[int] | None:
    """The positions in `trained` of the classes `wanted` (a repeated name matched in order), or None when some
    wanted class is not among the trained ones. A class-specific method scores a subset of its classes (ImageNet-A
    and -R: 200 of ImageNet's 1000) on its own logits restricted to those columns."""
    free: dict[str, list[int]] = {}
    for i, c in enumerate(trained):
        free.setdefault(c, []).append(i)
    out = []
    for c in wanted:
        if not free.get(c):
            return None
        out.append(free[c].pop(0))
    return out


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
    columns = None
    if task.classnames != run.method.classnames or dataset != cfg["dataset"]:
        if run.method.class_agnostic:
            run.method.set_classes(task.classnames)
        else:
            columns = class_subset(run.method.classnames, task.classnames)
            if columns is None:
                raise ClipfitError(f"method {cfg['method']!r} learned class-specific weights; it cannot classify the "
                                   f"classes of {dataset} ({subsample}), which are not among its own")
    items = {"test": task.test, "val": task.val, "train": task.train}.get(split)
    if items is None:
        raise ClipfitError(f"--split must be test, val or train, not {split!r}")
    res = evaluate(run.method, task, items, run.train_config, run.device, progress, split, columns=columns)
    return {"dataset": dataset, "subsample": subsample, "split": split, **res}

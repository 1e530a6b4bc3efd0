"""Training and evaluation loops (CPU or CUDA; bf16 autocast on CUDA).

`fit` trains a method in one of three ways, chosen by the method: a *training source* gives the epoch loop its
batches and the image side of the forward pass, either augmented images through CLIP (`ImageSource`, the default)
or features the frozen image encoder computed once (`FeatureSource`: no back-propagation through CLIP); methods
fitted in closed form on those features skip the epoch loop (`fit_closed_form`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from ..config import TrainConfig
from ..data.transforms import ImageDataset, cache_side, eval_transform, seed_worker, train_transform
from ..data.types import Item, Task
from ..errors import ClipfitError
from ..method.base import Method, Step
from ..progress import progress_bar
from . import distributed, metrics
from .rng import capture_rng, py_state, restore_rng, set_py_state
from .rundir import RunDir


def pick_device(device: str | None = None) -> torch.device:
    launched = distributed.current().device
    if device in (None, "", "auto", "cuda") and launched is not None:
        return launched  # one of several launched processes: its own GPU (or the CPU)
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ClipfitError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return torch.device(device)


def autocast(device: torch.device, precision: str):
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_towers(method: Method, **options: Any) -> None:
    """torch.compile each encoder layer of both towers in place (`nn.Module.compile`: parameter names, hooks and
    checkpoints unchanged); the trainable weights stay fp32 tensors of the same modules. `options` go to
    torch.compile (e.g. backend="aot_eager": graph capture without code generation)."""
    m = method.backbone.model
    for layer in [*m.text_model.encoder.layers, *m.vision_model.encoder.layers]:
        layer.compile(**options)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def lr_at(epoch: int, cfg: TrainConfig, step: int = 0, steps_per_epoch: int = 1) -> float:
    """Learning rate of step `step` of epoch `epoch`: constant warm-up epochs, then cosine (or constant).

    Per epoch (Dassl): epoch e >= warm-up runs at min + (lr - min)(1 + cos(pi (e - warm-up) / epochs)) / 2, so the
    cosine's period is `epochs`, as Dassl's scheduler has it. Per step: the same over steps, from the first step
    after warm-up to epochs x steps_per_epoch."""
    if epoch < cfg.warmup_epochs:
        return cfg.warmup_lr
    if cfg.scheduler == "constant":
        return cfg.lr
    if cfg.schedule_unit == "step":  # over the step budget when there is one (CLIP-LoRA: 500 x shots)
        t = (epoch - cfg.warmup_epochs) * steps_per_epoch + step
        total = cfg.iterations if cfg.iterations > 0 else cfg.epochs * steps_per_epoch
    else:
        t, total = epoch - cfg.warmup_epochs, cfg.epochs
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t / max(1, total)))


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, eps=cfg.adam_eps)
    raise ClipfitError(f"unknown optimizer {cfg.optimizer!r}")


def loader_workers(num_workers: int | None, device: torch.device) -> int:
    """DataLoader workers: the setting, or auto (None): 0 on CPU, where the cores are busy training, 4 on CUDA."""
    return num_workers if num_workers is not None else (4 if device.type == "cuda" else 0)


def batch_of(batch_size: int, n: int) -> int:
    """A batch size for `n` examples: at most `n` (the same batches; a huge setting is no error)."""
    return max(1, min(batch_size, n))


def pin(device: torch.device) -> bool:
    """Whether batches bound for `device` are put in page-locked memory (copied asynchronously): on CUDA only."""
    return device.type == "cuda"


def eval_loader(items: list[Item], task: Task, method: Method, batch_size: int, num_workers: int | None = 0):
    ds = ImageDataset(items, task.reader, eval_transform(method.backbone.image_spec))
    dev = method.backbone.device
    return torch.utils.data.DataLoader(ds, batch_size=batch_of(batch_size, len(ds)), shuffle=False, pin_memory=pin(dev),
                                       num_workers=loader_workers(num_workers, dev))


@torch.no_grad()
def predict(method: Method, loader, device: torch.device, precision: str = "auto", progress: bool = False,
            desc: str = "eval") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [N, C] and labels [N] over a loader (split across launched processes, gathered in order)."""
    dp, n = distributed.current(), len(loader.dataset)
    if dp.active and n >= dp.world:
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(loader.dataset, dp.indices(n)),
                                             batch_size=loader.batch_size, num_workers=loader.num_workers,
                                             pin_memory=loader.pin_memory)
    was_training = method.training
    method.eval()
    with autocast(device, precision):
        text = method.text_features()
        out, labels = [], []
        for x, y in progress_bar(loader, desc=desc, progress=progress):
            out.append(method.logits(method.image_features(x.to(device, non_blocking=True)), text).float().cpu())
            labels.append(y)
    method.train(was_training)
    if dp.active and n >= dp.world:
        logits, gathered = dp.gather((torch.cat(out), torch.cat(labels)), n)
        return logits, gathered
    return torch.cat(out), torch.cat(labels)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).float().mean()) * 100.0 if len(labels) else float("nan")


def evaluate(method: Method, task: Task, items: list[Item], cfg: TrainConfig, device: torch.device,
             progress: bool = False, desc: str = "eval", columns: list[int] | None = None) -> dict:
    """{"accuracy", "n"} and every metric task.metrics names (engine/metrics.py), in percent. `columns`: score only
    these of the method's classes (label i of `items` is column columns[i])."""
    if not items:
        raise ClipfitError(f"nothing to evaluate: the {desc} split of {task.name} is empty")
    logits, labels = predict(method, eval_loader(items, task, method, cfg.eval_batch_size, cfg.num_workers), device,
                             cfg.precision, progress, desc)
    if columns is not None:
        logits = logits[:, columns]
    return {**metrics.evaluate_all(task, items, logits, labels), "accuracy": accuracy(logits, labels), "n": len(labels)}


@torch.no_grad()
def extract_features(method: Method, task: Task, items: list[Item], device: torch.device, cfg: TrainConfig,
                     views: int = 0, seed: int = 0, progress: bool = False,
                     desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen image features [N * max(1, views), D] (float32, CPU) and labels of `items`: one un-augmented view
    per image (views=0, eval transform) or `views` randomly augmented views (train transform, seeded). With
    data-loader workers (`num_workers`; auto: 4 on CUDA), each view's workers seed their augmentation from a
    generator seeded by `seed`: views differ from each other, and a run repeats its own."""
    was_training = method.training
    method.eval()
    spec = method.backbone.image_spec
    tf = eval_transform(spec) if views <= 0 else train_transform(spec, seed=seed, scale=(cfg.crop_scale, 1.0), flip=cfg.flip)
    ds = ImageDataset(items, task.reader, tf, cache=views > 1, cache_short=cache_side(spec))
    workers, generator = loader_workers(cfg.num_workers, device), torch.Generator().manual_seed(seed)
    feats, labels = [], []
    with autocast(device, cfg.precision):
        for _ in range(max(1, views)):
            loader = torch.utils.data.DataLoader(ds, batch_size=batch_of(cfg.eval_batch_size, len(ds)), shuffle=False,
                                                 num_workers=workers, pin_memory=pin(device),
                                                 worker_init_fn=seed_worker, generator=generator)
            for x, y in progress_bar(loader, desc=desc, progress=progress):
                feats.append(method.frozen_image_features(x.to(device, non_blocking=True)).float().cpu())
                labels.append(y)
    method.train(was_training)
    return torch.cat(feats), torch.cat(labels)


@dataclass
class FitResult:
    """What training did: the epoch whose weights are kept, its validation accuracy, the per-epoch history, and
    which epochs were validated (`validated`, as metrics.json says it)."""

    epochs: int
    best_epoch: int | None
    val_accuracy: float | None
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # closed-form fits: what they chose (e.g. {"C": 0.1})
    validated: str | None = None


def _fmt(rec: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items())


class ImageSource:
    """Batches of augmented training images; the image side runs through CLIP (gradients reach its weights)."""

    def __init__(self, method: Method, task: Task, cfg: TrainConfig, seed: int, device: torch.device):
        self.method, self.cfg, self.device = method, cfg, device
        self.transform = train_transform(method.backbone.image_spec, seed=seed, scale=(cfg.crop_scale, 1.0),
                                         flip=cfg.flip)
        ds = ImageDataset(task.train, task.reader, self.transform, cache=True,
                          cache_short=cache_side(method.backbone.image_spec))
        self.generator = torch.Generator().manual_seed(seed)  # the data order
        self.loader = torch.utils.data.DataLoader(ds, batch_size=batch_of(cfg.batch_size, len(ds)), shuffle=True,
                                                  generator=self.generator,
                                                  drop_last=len(ds) >= cfg.batch_size, pin_memory=pin(device),
                                                  num_workers=loader_workers(cfg.num_workers, device),
                                                  worker_init_fn=seed_worker)
        self.n_batches = len(self.loader)
        self.val_loader = eval_loader(task.val, task, method, cfg.eval_batch_size, cfg.num_workers) if task.val else None

    def batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return self.loader

    def rng_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        return {"order": self.generator.get_state()}, {"augment": py_state(self.transform.rng)}

    def set_rng_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.generator.set_state(tensors["order"])
        set_py_state(meta["augment"], self.transform.rng)

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.image_features(x)

    def validate(self) -> float:
        return accuracy(*predict(self.method, self.val_loader, self.device, self.cfg.precision))


def on_features(method: Method, cfg: TrainConfig) -> bool:
    """Whether `fit` trains `method` on cached image features (`FeatureSource`) rather than on images."""
    return bool(method.closed_form or method.trains_on_features or (method.image_tower_frozen and cfg.feature_cache))


def feature_views(method: Method, cfg: TrainConfig) -> int:
    """Training views per image in the feature cache: the method's own `views` setting when it has one, else the
    `feature_views` setting (0 for closed-form fits: one un-augmented view)."""
    own = method.feature_views
    if own is not None:
        return own
    if method.closed_form:
        return 0
    if method.view_per_epoch and cfg.iterations <= 0:  # views past the last epoch would never be used
        return min(cfg.feature_views, max(1, cfg.epochs))
    return cfg.feature_views


class FeatureSource:
    """Batches of image features the frozen encoder computed once (`on_features`); the method's
    `adapt_image_features` is the only image-side computation per step. With V cached views and
    `Method.view_per_epoch`, epoch e draws its batches from view e mod V of every image: a pool of V augmentations
    stands in for a fresh one every epoch. The batch order is drawn as `ImageSource` draws it (the same DataLoader
    sampling from the same seed), so that without augmentation both train alike."""

    def __init__(self, method: Method, train: tuple[torch.Tensor, torch.Tensor],
                 val: tuple[torch.Tensor, torch.Tensor] | None, cfg: TrainConfig, seed: int, device: torch.device):
        self.method, self.cfg, self.device = method, cfg, device
        (x, y), self.val = train, val
        self.views = max(1, feature_views(method, cfg)) if method.view_per_epoch else 1
        n = len(y) // self.views
        self.x, self.y = x.reshape(self.views, n, *x.shape[1:]), y.reshape(self.views, n)  # view-major rows
        self.epoch = 0
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.utils.data.DataLoader(cast(Any, range(n)), batch_size=batch_of(cfg.batch_size, n), shuffle=True,
                                                 generator=self.generator, drop_last=n >= cfg.batch_size)
        self.n_batches = len(self.order)

    def batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.x[self.epoch % self.views], self.y[self.epoch % self.views]
        self.epoch += 1
        for idx in self.order:
            yield x[idx], y[idx]

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.adapt_image_features(x)

    def rng_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        return {"order": self.generator.get_state()}, {"epoch": self.epoch}

    def set_rng_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.generator.set_state(tensors["order"])
        self.epoch = meta.get("epoch", self.epoch)  # which cached view the next epoch trains on

    def validate(self) -> float:
        assert self.val is not None, "validate is called only with a validation split"
        val_x, val_y = self.val
        m, b = self.method, self.cfg.eval_batch_size
        was_training = m.training
        m.eval()
        with torch.no_grad(), autocast(self.device, self.cfg.precision):
            text = m.text_features()
            out = [m.logits(m.adapt_image_features(val_x[i:i + b].to(self.device)), text).float().cpu()
                   for i in range(0, len(val_y), b)]
        m.train(was_training)
        return accuracy(torch.cat(out), val_y)


def cached_features(method: Method, task: Task, cfg: TrainConfig, seed: int, device: torch.device,
                    progress: bool) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
    """(train features, labels) and (val features, labels) from the frozen encoder; the method sees the train set."""
    train = extract_features(method, task, task.train, device, cfg, feature_views(method, cfg), seed, progress,
                             "train features")
    val = extract_features(method, task, task.val, device, cfg, 0, seed, progress, "val features") if task.val else None
    method.on_features(train[0].to(device), train[1].to(device))
    return train, val


def fit_closed_form(method: Method, train, val, log: Callable[[str], None]) -> FitResult:
    """A solver fit on cached features (`Method.closed_form`): no SGD, no epochs."""
    t0 = time.time()
    res = dict(method.fit_features(*train, *(val or (None, None))))
    method.eval()
    history = res.pop("history", [])
    for rec in history:
        log(_fmt(rec))
    return FitResult(0, None, res.pop("val_accuracy", None), history, round(time.time() - t0, 2), res)


def select_after_training(method: Method, val, result: FitResult, log: Callable[[str], None]) -> None:
    """What a method that trained on features chooses on the validation features afterwards
    (`Method.select_on_validation`), recorded in `result`."""
    chosen = dict(method.select_on_validation(*(val or (None, None))))
    method.eval()
    for rec in chosen.pop("history", []):
        log(_fmt(rec))
    if "val_accuracy" in chosen:
        result.val_accuracy = chosen.pop("val_accuracy")
    if chosen:
        log("selected on validation: " + _fmt(chosen))
        result.extra.update(chosen)


def validation_plan(cfg: TrainConfig, has_val: bool) -> tuple[int | None, str]:
    """(validate every how many epochs: None = only after the last, 0 = never; the words metrics.json records).
    validate=auto validates per epoch only when it chooses the kept epoch (select=best)."""
    if not has_val or cfg.validate == "never":
        if cfg.select == "best" and has_val:
            raise ClipfitError("validate=never with select=best: nothing would choose the kept epoch; use select=last")
        return 0, "never"
    if cfg.validate == "always" or cfg.select == "best":
        every = max(1, cfg.eval_every)
        return every, "every epoch" if every == 1 else f"every {every} epochs and the last"
    return None, "last epoch only (select=last: earlier epochs are not validated; validate=always to see them)"


def nonfinite_loss(method: Method, cfg: TrainConfig, loss: float, parts: dict[str, float], epoch: int) -> str:
    """The one line for a loss that became NaN or infinite: the terms that did, and the settings that feed them (the
    learning rate, and each such term's weight, `Method.term_weights`)."""
    bad = [k for k, v in parts.items() if not math.isfinite(v)]
    what = (f"non-finite: {', '.join(bad)}" if bad else
            "the terms are finite (" + ", ".join(f"{k}={v:.3g}" for k, v in parts.items()) + ") but their weighted sum is not")
    weights = [w for k, w in method.term_weights.items() if k in (bad or parts)]
    feeds = [f"lr={cfg.lr:g}"] + [f"{w}={getattr(method.cfg, w):g}" for w in weights]
    return f"loss became {loss} at epoch {epoch} ({what}); the settings that feed it: {', '.join(feeds)}; lower them"


def forward_step(method: Method[Any], image_features: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                 y: torch.Tensor, text: torch.Tensor | None, device: torch.device, precision: str) -> Step:
    """The forward pass of one training step under the run's autocast: the class text features (`text`: the cached
    ones of a static text side, else `Method.text_features`), the image features (the source's: of images, or of
    cached features), the logits, and the method's teacher outputs (`Method.forward_teacher`)."""
    with autocast(device, precision):
        text = text if text is not None else method.text_features()
        image = image_features(x)
        step = Step(x, y, text, image, method.logits(image, text))
        method.forward_teacher(step)
    return step


def train_step(method: Method[Any], step: Step, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter],
               cfg: TrainConfig, epoch: int, weight: float) -> dict[str, float]:
    """The method's loss of a forward step, its gradients (summed over launched processes with `weight`, clipped
    when `grad_clip` says), one optimiser step; returns the loss and its terms (averaged over the processes)."""
    dp = distributed.current()
    step.loss, parts = method.loss(step)
    if not torch.isfinite(step.loss):
        raise ClipfitError(nonfinite_loss(method, cfg, float(step.loss.detach()), parts, epoch + 1))
    opt.zero_grad(set_to_none=True)
    method.backward(step)
    dp.reduce_grads(params, weight)
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    opt.step()
    return dp.reduce_values({"loss": float(step.loss.detach()), **parts}, weight)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for grp in opt.param_groups:
        grp["lr"] = lr


def train_epoch(method: Method[Any], source: ImageSource | FeatureSource, opt: torch.optim.Optimizer,
                params: list[torch.nn.Parameter], cfg: TrainConfig, epoch: int, total_steps: int, device: torch.device,
                bar: Any) -> dict[str, Any]:
    """The steps of one epoch (0-based `epoch`) over the source's batches, at most up to `total_steps` in all;
    returns the epoch's record: its number, learning rate and mean loss terms."""
    set_lr(opt, lr_at(epoch, cfg))
    method.train()
    dp = distributed.current()  # several launched processes: each takes its share of every batch
    static_text, cached_text = method.text_is_static, None
    sums: dict[str, float] = {}
    n = 0
    for x, y in source.batches():
        if epoch * source.n_batches + n >= total_steps:
            break
        if cfg.schedule_unit == "step":
            set_lr(opt, lr_at(epoch, cfg, n, source.n_batches))
        if len(y) < dp.world:
            raise ClipfitError(f"a batch of {len(y)} images cannot be shared by {dp.world} processes; raise "
                               "--set batch_size= or launch fewer processes")
        weight = dp.share(len(y))
        x, y = dp.shard(x).to(device, non_blocking=True), dp.shard(y).to(device, non_blocking=True)
        if static_text and cached_text is None:
            with torch.no_grad(), autocast(device, cfg.precision):
                cached_text = method.text_features()
        step = forward_step(method, source.image_features, x, y, cached_text, device, cfg.precision)
        for k, v in train_step(method, step, opt, params, cfg, epoch, weight).items():
            sums[k] = sums.get(k, 0.0) + v
        n += 1
        bar.update(1)
    return {"epoch": epoch + 1, "lr": lr_at(epoch, cfg, max(n - 1, 0), source.n_batches),
            **{k: v / max(n, 1) for k, v in sums.items()}}


@dataclass
class LoopState:
    """Where the epoch loop stands: the next epoch, the best validated epoch so far (its accuracy, number and tuned
    state) and the per-epoch records; what a checkpoint saves and `resume` restores."""

    start: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"acc": -1.0, "epoch": None, "state": None})
    history: list[dict[str, Any]] = field(default_factory=list)


def resume_state(method: Method[Any], source: ImageSource | FeatureSource, opt: torch.optim.Optimizer,
                    run: RunDir | None, resume: bool, log: Callable[[str], None]) -> LoopState:
    """A fresh start, or (`resume`, with a checkpoint in `run`) the state after the checkpoint's epoch: weights,
    optimiser state, best-so-far, history and random number generators."""
    if not (resume and run is not None and run.has_checkpoint):
        return LoopState()
    ckpt = run.load_checkpoint(opt)
    method.load_tuned(ckpt.tuned)
    exact = restore_rng(source, ckpt.rng_tensors, ckpt.rng_meta)
    log(f"resumed after epoch {ckpt.epoch}" + ("" if exact else " (a checkpoint without random states: the rest of the "
                                                                "run differs from an uninterrupted one)"))
    return LoopState(ckpt.epoch, ckpt.best, ckpt.history)


def train_epochs(method: Method[Any], source: ImageSource | FeatureSource, cfg: TrainConfig, device: torch.device,
                 has_val: bool, log: Callable[[str], None], progress: bool, run: RunDir | None, resume: bool) -> FitResult:
    """The epoch loop: per-epoch learning rate, steps over the source's batches, validation, checkpoint selection.

    With `run`, the state after every epoch is saved in its checkpoint; `resume` continues from it with the same
    weights, optimiser state, best-so-far and random number generators: the result is bit for bit an uninterrupted
    run's (on the same machine and software).
    """
    t0 = time.time()
    if cfg.iterations > 0:  # a budget of optimiser steps: as many epochs as it needs, the last one cut short
        cfg = dataclasses.replace(cfg, epochs=math.ceil(cfg.iterations / max(1, source.n_batches)))
    total_steps = cfg.iterations if cfg.iterations > 0 else cfg.epochs * source.n_batches
    params = list(method.trainable().values())
    opt = make_optimizer(params, cfg)
    state = resume_state(method, source, opt, run, resume, log)
    bar = progress_bar(total=total_steps, initial=min(state.start * source.n_batches, total_steps),
                       desc=f"train {method.name}", progress=progress)
    every, validated = validation_plan(cfg, has_val)
    for epoch in range(state.start, cfg.epochs):
        rec = train_epoch(method, source, opt, params, cfg, epoch, total_steps, device, bar)
        method.on_epoch_end(epoch + 1, cfg.epochs)
        last = epoch + 1 == cfg.epochs
        if every != 0 and (last or (every is not None and (epoch + 1) % every == 0)):
            rec["val_accuracy"] = source.validate()
            if cfg.select == "best" and rec["val_accuracy"] >= state.best["acc"]:
                state.best = {"acc": rec["val_accuracy"], "epoch": epoch + 1, "state": method.tuned_state()}
            bar.set_postfix(loss=f"{rec['loss']:.3f}", val=f"{rec['val_accuracy']:.1f}")
        state.history.append(rec)
        if run is not None:
            run.save_checkpoint(method.tuned_state(), opt, epoch + 1, state.best, state.history, *capture_rng(source))
        log(_fmt(rec))  # after the checkpoint: every epoch in the log can be resumed from
    bar.close()
    method.on_train_end()
    if cfg.select == "best" and state.best["state"] is not None:
        method.load_tuned(state.best["state"])
        chosen, val_acc = state.best["epoch"], state.best["acc"]
    else:
        chosen, val_acc = cfg.epochs, state.history[-1].get("val_accuracy")
    method.eval()
    return FitResult(cfg.epochs, chosen, val_acc, state.history, round(time.time() - t0, 2), validated=validated)


def fit(method: Method, task: Task, cfg: TrainConfig, seed: int, device: torch.device,
        log: Callable[[str], None] = print, progress: bool = True, run: RunDir | None = None,
        resume: bool = False) -> FitResult:
    """Train `method` on task.train, validating on task.val; leaves the selected weights loaded."""
    seed_everything(seed)
    method.to(device)
    method.reset_parameters()
    if not method.closed_form and (cfg.epochs <= 0 or not method.trainable()):
        return FitResult(0, None, None)
    method.on_train_start()
    if cfg.compile:
        compile_towers(method)
    t0 = time.time()
    if on_features(method, cfg):
        train, val = cached_features(method, task, cfg, seed, device, progress)
        if method.closed_form:
            result = fit_closed_form(method, train, val, log)
            result.train_seconds = round(time.time() - t0, 2)
            return result
        source: ImageSource | FeatureSource = FeatureSource(method, train, val, cfg, seed, device)
    else:
        source = ImageSource(method, task, cfg, seed, device)
    result = train_epochs(method, source, cfg, device, bool(task.val), log, progress, run, resume)
    if isinstance(source, FeatureSource):
        select_after_training(method, source.val, result, log)
    result.train_seconds = round(time.time() - t0, 2)
    return result

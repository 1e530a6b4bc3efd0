"""Training and evaluation loops (CPU or CUDA; bf16 autocast on CUDA)."""
from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data.transforms import ImageDataset, eval_transform, train_transform
from ..data.types import Item, Task
from ..errors import ClipfitError
from ..io import load_tensors, save_tensors
from ..methods.base import Method


def pick_device(device: str | None = None) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ClipfitError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return torch.device(device)


def autocast(device: torch.device, precision: str):
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def lr_at(epoch: int, cfg: TrainConfig) -> float:
    """Per-epoch learning rate: constant warm-up, then cosine (or constant) over `epochs` as Dassl does."""
    if epoch < cfg.warmup_epochs:
        return cfg.warmup_lr
    if cfg.scheduler == "constant":
        return cfg.lr
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / max(1, cfg.epochs)))


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ClipfitError(f"unknown optimizer {cfg.optimizer!r}")


def eval_loader(items: list[Item], task: Task, method: Method, batch_size: int, num_workers: int = 0):
    ds = ImageDataset(items, task.reader, eval_transform(method.backbone.image_spec))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)


@torch.no_grad()
def predict(method: Method, loader, device: torch.device, precision: str = "auto", progress: bool = False,
            desc: str = "eval") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [N, C] and labels [N] over a loader."""
    was_training = method.training
    method.eval()
    with autocast(device, precision):
        text = method.text_features()
        out, labels = [], []
        for x, y in tqdm(loader, desc=desc, disable=None if progress else True, leave=False):
            out.append(method.logits(method.image_features(x.to(device)), text).float().cpu())
            labels.append(y)
    method.train(was_training)
    return torch.cat(out), torch.cat(labels)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).float().mean()) * 100.0 if len(labels) else float("nan")


def evaluate(method: Method, task: Task, items: list[Item], cfg: TrainConfig, device: torch.device,
             progress: bool = False, desc: str = "eval") -> dict:
    if not items:
        raise ClipfitError(f"nothing to evaluate: the {desc} split of {task.name} is empty")
    logits, labels = predict(method, eval_loader(items, task, method, cfg.eval_batch_size, cfg.num_workers), device,
                             cfg.precision, progress, desc)
    return {"accuracy": accuracy(logits, labels), "n": len(labels)}


@torch.no_grad()
def extract_features(method: Method, task: Task, items: list[Item], device: torch.device, cfg: TrainConfig,
                     views: int = 0, seed: int = 0, progress: bool = False,
                     desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen image features [N * max(1, views), D] (float32, CPU) and labels of `items`: one un-augmented view
    per image (views=0, eval transform) or `views` randomly augmented views (train transform, seeded)."""
    was_training = method.training
    method.eval()
    spec = method.backbone.image_spec
    tf = eval_transform(spec) if views <= 0 else train_transform(spec, seed=seed, scale=(cfg.crop_scale, 1.0), flip=cfg.flip)
    ds = ImageDataset(items, task.reader, tf, cache=views > 1)
    feats, labels = [], []
    with autocast(device, cfg.precision):
        for _ in range(max(1, views)):
            loader = torch.utils.data.DataLoader(ds, batch_size=cfg.eval_batch_size, shuffle=False, num_workers=0)
            for x, y in tqdm(loader, desc=desc, disable=None if progress else True, leave=False):
                feats.append(method.frozen_image_features(x.to(device)).float().cpu())
                labels.append(y)
    method.train(was_training)
    return torch.cat(feats), torch.cat(labels)


CHECKPOINT = "checkpoint.safetensors"


def save_checkpoint(path: Path, method: Method, opt: torch.optim.Optimizer, epoch: int, best: dict,
                    history: list[dict]) -> None:
    """Everything needed to continue training after `epoch`: tuned weights, optimiser state, best so far."""
    tensors = {f"param/{n}": t for n, t in method.tuned_state().items()}
    if best["state"] is not None:
        tensors.update({f"best/{n}": t for n, t in best["state"].items()})
    sd = opt.state_dict()
    for i, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"opt/{i}/{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    meta = {"epoch": epoch, "best_acc": best["acc"], "best_epoch": best["epoch"], "history": history}
    save_tensors(path, tensors, metadata={"clipfit_checkpoint": json.dumps(meta)})


def load_checkpoint(path: Path, method: Method, opt: torch.optim.Optimizer) -> tuple[int, dict, list[dict]]:
    """Restore a checkpoint written by `save_checkpoint`; returns (epochs done, best, history)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["clipfit_checkpoint"])
    tensors = load_tensors(path)
    method.load_tuned({k[6:]: v for k, v in tensors.items() if k.startswith("param/")})
    best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best/")} or None
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt/"):
            _, i, name = k.split("/", 2)
            state.setdefault(int(i), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)
    best = {"acc": meta["best_acc"], "epoch": meta["best_epoch"], "state": best_state}
    return meta["epoch"], best, meta["history"]


def fit(method: Method, task: Task, cfg: TrainConfig, seed: int, device: torch.device,
        log: Callable[[str], None] = print, progress: bool = True, checkpoint_dir: Path | None = None,
        resume: bool = False) -> dict:
    """Train `method` on task.train, validating on task.val; leaves the selected checkpoint loaded.

    Three ways, chosen by the method: back-propagation through CLIP on augmented images (the default); SGD on
    features the frozen backbone computed once (`trains_on_features`: no back-propagation through CLIP); or a
    closed-form / solver fit on those features (`closed_form`: no SGD, no epochs).
    Returns a summary: best epoch, its validation accuracy, per-epoch history, time.
    With `checkpoint_dir`, the state after every epoch is saved there (atomically); `resume` continues from it.
    A resumed run continues from the last finished epoch with the same weights, optimiser state and best-so-far;
    the order of its remaining batches differs from an uninterrupted run's.
    """
    seed_everything(seed)
    method.to(device)
    method.reset_parameters()
    params = list(method.trainable().values())
    t0 = time.time()
    if not method.closed_form and (cfg.epochs <= 0 or not params):
        return {"epochs": 0, "best_epoch": None, "val_accuracy": None, "history": [], "train_seconds": 0.0}
    method.on_train_start()
    on_features = method.closed_form or method.trains_on_features
    if on_features:
        train_x, train_y = extract_features(method, task, task.train, device, cfg, method.feature_views, seed,
                                            progress, "train features")
        val_x, val_y = (extract_features(method, task, task.val, device, cfg, 0, seed, progress, "val features")
                        if task.val else (None, None))
        method.on_features(train_x.to(device), train_y.to(device))
        if method.closed_form:
            res = method.fit_features(train_x, train_y, val_x, val_y)
            method.eval()
            for rec in res.get("history", []):
                log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()))
            return {"epochs": 0, "best_epoch": None, **res, "val_accuracy": res.get("val_accuracy"),
                    "history": res.get("history", []), "train_seconds": round(time.time() - t0, 2)}
        n_train = len(train_y)
        g = torch.Generator().manual_seed(seed)
        drop_last = n_train >= cfg.batch_size
        n_batches = n_train // cfg.batch_size if drop_last else math.ceil(n_train / cfg.batch_size)

        def batches():
            perm = torch.randperm(n_train, generator=g)
            for i in range(n_batches):
                idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                yield train_x[idx], train_y[idx]

        forward = method.adapt_image_features

        def validate() -> float:
            was_training = method.training
            method.eval()
            with torch.no_grad(), autocast(device, cfg.precision):
                text = method.text_features()
                out = [method.logits(method.adapt_image_features(val_x[i:i + cfg.eval_batch_size].to(device)), text)
                       .float().cpu() for i in range(0, len(val_y), cfg.eval_batch_size)]
            method.train(was_training)
            return accuracy(torch.cat(out), val_y)
    else:
        tf = train_transform(method.backbone.image_spec, seed=seed, scale=(cfg.crop_scale, 1.0), flip=cfg.flip)
        ds = ImageDataset(task.train, task.reader, tf, cache=True)
        g = torch.Generator().manual_seed(seed)
        loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=g,
                                             drop_last=len(ds) >= cfg.batch_size, num_workers=cfg.num_workers)
        n_batches = len(loader)
        batches = lambda: loader  # noqa: E731
        forward = method.image_features
        val_loader = eval_loader(task.val, task, method, cfg.eval_batch_size, cfg.num_workers) if task.val else None

        def validate() -> float:
            return accuracy(*predict(method, val_loader, device, cfg.precision))

    has_val = bool(task.val)
    opt = make_optimizer(params, cfg)
    best = {"acc": -1.0, "epoch": None, "state": None}
    history: list[dict] = []
    start = 0
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    if resume and ckpt is not None and ckpt.exists():
        start, best, history = load_checkpoint(ckpt, method, opt)
        log(f"resumed after epoch {start}")
    bar = tqdm(total=cfg.epochs * n_batches, initial=start * n_batches, desc=f"train {method.name}",
               disable=None if progress else True, leave=False)
    static_text = method.text_is_static
    for epoch in range(start, cfg.epochs):
        for grp in opt.param_groups:
            grp["lr"] = lr_at(epoch, cfg)
        method.train()
        cached_text = None
        sums: dict[str, float] = {}
        n = 0
        for x, y in batches():
            x, y = x.to(device), y.to(device)
            with autocast(device, cfg.precision):
                if static_text:
                    if cached_text is None:
                        with torch.no_grad():
                            cached_text = method.text_features()
                    text = cached_text
                else:
                    text = method.text_features()
                logits = method.logits(forward(x), text)
            loss, parts = method.loss(logits, y, text)
            if not torch.isfinite(loss):
                raise ClipfitError(f"loss became {float(loss)} at epoch {epoch + 1}; lower --set lr=")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            bar.update(1)
        rec = {"epoch": epoch + 1, "lr": lr_at(epoch, cfg), **{k: v / max(n, 1) for k, v in sums.items()}}
        last = epoch + 1 == cfg.epochs
        if has_val and (last or (epoch + 1) % max(1, cfg.eval_every) == 0):
            rec["val_accuracy"] = validate()
            if cfg.select == "best" and rec["val_accuracy"] >= best["acc"]:
                best = {"acc": rec["val_accuracy"], "epoch": epoch + 1, "state": method.tuned_state()}
            bar.set_postfix(loss=f"{rec['loss']:.3f}", val=f"{rec['val_accuracy']:.1f}")
        history.append(rec)
        log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()))
        if ckpt is not None:
            save_checkpoint(ckpt, method, opt, epoch + 1, best, history)
    bar.close()
    if cfg.select == "best" and best["state"] is not None:
        method.load_tuned(best["state"])
        chosen, val_acc = best["epoch"], best["acc"]
    else:
        chosen, val_acc = cfg.epochs, history[-1].get("val_accuracy")
    method.eval()
    return {"epochs": cfg.epochs, "best_epoch": chosen, "val_accuracy": val_acc, "history": history,
            "train_seconds": round(time.time() - t0, 2)}

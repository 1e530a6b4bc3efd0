"""Dataclass configs with help text, and `--set key=value` overrides typed by the dataclass fields."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ClipfitError


def opt(default: Any, help: str, choices: tuple | None = None):
    """A dataclass field with help text (shown by `clipfit train --help-method`)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    """Optimisation settings shared by every method (a method states its own defaults)."""

    optimizer: str = opt("sgd", "optimiser", ("sgd", "adamw"))
    lr: float = opt(0.002, "peak learning rate")
    momentum: float = opt(0.9, "SGD momentum")
    weight_decay: float = opt(5e-4, "weight decay")
    batch_size: int = opt(32, "training batch size")
    epochs: int = opt(100, "training epochs (an epoch is one pass over the few-shot training set)")
    warmup_epochs: int = opt(1, "epochs at constant warmup_lr before the schedule starts")
    warmup_lr: float = opt(1e-5, "learning rate during warm-up")
    scheduler: str = opt("cosine", "learning-rate schedule after warm-up, stepped per epoch", ("cosine", "constant"))
    select: str = opt("best", "checkpoint kept: best validation accuracy (ties: later epoch) or the last epoch", ("best", "last"))
    eval_every: int = opt(1, "validate every N epochs (and always after the last)")
    eval_batch_size: int = opt(256, "batch size for evaluation")
    precision: str = opt("auto", "auto: bf16 autocast on CUDA, fp32 on CPU", ("auto", "fp32", "bf16"))
    num_workers: int = opt(0, "DataLoader worker processes")
    grad_clip: float = opt(0.0, "clip gradient norm to this value (0: off)")
    crop_scale: float = opt(0.08, "smallest area fraction of the random resized crop (CoOp: 0.08; 1: no cropping)")
    flip: bool = opt(True, "random horizontal flips during training")


def _coerce(value: str, typ: Any, key: str) -> Any:
    if isinstance(typ, str):
        typ = eval(typ, vars(typing), {})  # annotations are strings under `from __future__ import annotations`
    origin = typing.get_origin(typ)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value.lower() in ("none", "null"):
            return None
        typ = args[0]
    try:
        if typ is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ in (int, float, str):
            return typ(value)
        if typing.get_origin(typ) is tuple or typ is tuple:
            inner = (typing.get_args(typ) or (str,))[0]
            return tuple(inner(v) for v in value.split(",") if v)
    except ValueError:
        raise ClipfitError(f"--set {key}={value}: expected {getattr(typ, '__name__', typ)}") from None
    return value


def apply_overrides(configs: list[Any], overrides: list[str]) -> None:
    """Apply 'key=value' strings to the first config in `configs` that has the field; error on unknown keys."""
    for ov in overrides:
        key, sep, value = ov.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ClipfitError(f"--set expects key=value, got {ov!r}")
        for cfg in configs:
            fmap = {f.name: f for f in fields(cfg)}
            if key in fmap:
                f = fmap[key]
                v = _coerce(value.strip(), f.type, key)
                choices = f.metadata.get("choices")
                if choices and v not in choices:
                    raise ClipfitError(f"--set {key}={value}: choose one of {', '.join(map(str, choices))}")
                setattr(cfg, key, v)
                break
        else:
            known = sorted(f.name for cfg in configs for f in fields(cfg))
            raise ClipfitError(f"--set {key}: unknown setting; known: {', '.join(known)}")


def describe(cfg_cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, help) for each field of a config dataclass."""
    out = []
    for f in fields(cfg_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append((f.name, default, f.metadata.get("help", "")))
    return out


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)

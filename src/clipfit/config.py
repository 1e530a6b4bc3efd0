"""Typed settings: dataclass configs with help text, checked when set.

Inside clipfit every setting is a typed value (`{"beta": 2.0, "epochs": 5}`); text such as `--set beta=2` is
parsed into that form only at the command-line edge (`parse_settings`).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ClipfitError
from .recipes import DASSL_SGD

_D = DASSL_SGD.settings
# Cached augmented views per image for methods with a frozen image encoder: the smallest pool whose accuracy
# matched fresh augmentation every epoch (CoOp, base-to-new on synth_shift and synth_conflict, 3 seeds; the
# measurement is in the README's speed section).
FEATURE_VIEWS = 16


def opt(default: Any, help: str, choices: tuple[Any, ...] | None = None, range: str | None = None,
        check: Callable[[str, Any], Any] | None = None) -> Any:
    """A dataclass field with help text (shown by `clipfit methods --details`), optional allowed values and an
    optional numeric range in interval notation: "(0, inf)" is > 0, "[1, inf)" is >= 1, "(0, 1]" is 0 < x <= 1.
    Float settings are always finite (NaN and infinities are refused). `check(key, value)`: a further check of a
    value when it is set (a one-line `ClipfitError` when it is wrong)."""
    if range is not None:
        Interval.parse(range).check("default", default)  # a wrong default fails at import, not in a user's run
    return field(default=default, metadata={"help": help, "choices": choices, "range": range, "check": check})


@dataclass(frozen=True)
class Interval:
    """A numeric range such as [0, inf) or (0, 1]; `check` refuses a value outside it with a one-line error."""

    low: float
    high: float
    low_open: bool
    high_open: bool

    @classmethod
    def parse(cls, text: str) -> Interval:
        m = re.fullmatch(r"\s*([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])\s*", text)
        if not m:
            raise ValueError(f"range {text!r}: write it in interval notation, e.g. '(0, 1]' or '[1, inf)'")
        return cls(float(m[2]), float(m[3]), m[1] == "(", m[4] == ")")

    def __str__(self) -> str:
        num = lambda x: "inf" if math.isinf(x) else f"{x:g}"  # noqa: E731
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {num(self.low)}"
        return f"in {'(' if self.low_open else '['}{num(self.low)}, {num(self.high)}{')' if self.high_open else ']'}"

    def contains(self, x: float) -> bool:
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below

    def check(self, key: str, value: Any) -> None:
        if value is not None and not self.contains(value):
            raise ClipfitError(f"setting {key}={value!r}: must be {self}")


@dataclass
class TrainConfig:
    """Optimisation settings shared by every method. Defaults: the Dassl recipe CoOp's family uses; each method's
    recipe (clipfit.recipes) sets its own."""

    optimizer: str = opt(_D["optimizer"], "optimiser", ("sgd", "adamw"))
    lr: float = opt(_D["lr"], "peak learning rate (0: nothing moves, a check)", range="[0, inf)")
    momentum: float = opt(_D["momentum"], "SGD momentum", range="[0, 1)")
    weight_decay: float = opt(_D["weight_decay"], "weight decay", range="[0, inf)")
    batch_size: int = opt(_D["batch_size"], "training batch size", range="[1, inf)")
    epochs: int = opt(100, "training epochs (an epoch is one pass over the few-shot training set)", range="[0, inf)")
    warmup_epochs: int = opt(_D["warmup_epochs"], "epochs at constant warmup_lr before the schedule starts",
                             range="[0, inf)")
    warmup_lr: float = opt(_D["warmup_lr"], "learning rate during warm-up", range="[0, inf)")
    scheduler: str = opt(_D["scheduler"], "learning-rate schedule after warm-up", ("cosine", "constant"))
    schedule_unit: str = opt("epoch", "the cosine steps once per epoch (Dassl) or after every optimiser step "
                                      "(CLIP-LoRA, Tip-Adapter-F)", ("epoch", "step"))
    min_lr: float = opt(0.0, "the cosine's final learning rate (CLIP-LoRA: 1e-6)", range="[0, inf)")
    iterations: int = opt(0, "total optimiser steps; > 0 replaces `epochs` (as many epochs as the steps need, the "
                             "last one cut short; CLIP-LoRA: 500 x shots)", range="[0, inf)")
    select: str = opt("best", "checkpoint kept: best validation accuracy (ties: later epoch) or the last epoch (the "
                              "CoOp protocol's; each recipe sets its paper's)", ("best", "last"))
    val_shots: int | None = opt(None, "validation images per class; none = the protocol's rule (CoOp: min(K, 4); the "
                                      "LayerNorm-tuning paper: K, Flowers min(K, 4), K/10 above 16 shots)",
                                range="[0, inf)")
    eval_every: int = opt(1, "validate every N epochs (and always after the last)", range="[1, inf)")
    eval_batch_size: int = opt(256, "batch size for evaluation", range="[1, inf)")
    precision: str = opt("auto", "auto: bf16 autocast on CUDA, fp32 on CPU", ("auto", "fp32", "bf16"))
    num_workers: int | None = opt(None, "DataLoader worker processes decoding and augmenting images; none = auto: "
                                        "0 on CPU (the cores train), 4 on CUDA", range="[0, inf)")
    compile: bool = opt(False, "torch.compile the encoder layers of both towers (GPU runs: faster steps after a "
                               "compilation of a minute or so; the same results up to float rounding)")
    adam_eps: float = opt(1e-8, "AdamW's epsilon (Tip-Adapter-F: 1e-4)", range="(0, inf)")
    grad_clip: float = opt(0.0, "clip gradient norm to this value (0: off)", range="[0, inf)")
    crop_scale: float = opt(0.08, "smallest area fraction of the random resized crop (CoOp: 0.08; 1: no cropping)",
                            range="(0, 1]")
    flip: bool = opt(True, "random horizontal flips during training")
    record: str = opt("", "record during training, comma-separated: change (each tuned parameter's ||p - p0||^2 per "
                          "epoch), grads (its summed squared gradient per epoch), steps (its change at every step); "
                          "written to record.json/.csv in the run directory; '' = nothing (clipfit.engine.record)")
    log: str = opt("", "also write the training curves (and what `record` records) as TensorBoard event files in "
                       "RUN_DIR/tensorboard/ (needs the tensorboard package: pip install 'clipfit[tensorboard]')",
                   ("", "tensorboard"))
    feature_cache: bool = opt(True, "methods whose image encoder is frozen (CoOp's family, adapters, probes) train "
                                    "on image features encoded once per cached view; false: every step encodes "
                                    "freshly augmented images (slower, the same result without augmentation)")
    feature_views: int = opt(FEATURE_VIEWS, "augmented views per training image in the feature cache (methods "
                                            "without a `views` setting of their own); epoch e trains on view e mod "
                                            "N of every image; 0 = one un-augmented view", range="[0, inf)")
    validate: str = opt("auto", "per-epoch validation: auto = every eval_every epochs when it chooses the kept "
                                "epoch (select=best), else only after the last epoch; always = every eval_every "
                                "epochs; never = not at all", ("auto", "always", "never"))


@functools.cache
def field_types(cfg_cls: type) -> dict[str, Any]:
    """name -> resolved type of each field of a config dataclass (resolved once per class: resolving the string
    annotations compiles each of them, which took a third of a second of every start-up)."""
    hints = typing.get_type_hints(cfg_cls)
    return {f.name: hints[f.name] for f in fields(cfg_cls)}


def _base_type(typ: Any) -> tuple[Any, bool]:
    """(the type without Optional, whether None is allowed)."""
    if typing.get_origin(typ) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(typ))
    return typ, False


def check_value(key: str, value: Any, typ: Any, choices: tuple[Any, ...] | None = None, range: str | None = None,
                check: Callable[[str, Any], Any] | None = None) -> Any:
    """`value` as the field's type (an int is accepted for a float), finite, inside the field's `range` and among its
    `choices`, passing its `check`, or a one-line error naming the key, the value and what is allowed."""
    typ, optional = _base_type(typ)
    if value is None and optional:
        return None
    ok = (isinstance(value, bool) if typ is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if typ is float else
          isinstance(value, int) and not isinstance(value, bool) if typ is int else
          isinstance(value, str) if typ is str else True)
    if not ok:
        raise ClipfitError(f"setting {key}={value!r}: expected {getattr(typ, '__name__', typ)}")
    if typ is float:
        value = float(value)
        if not math.isfinite(value):
            raise ClipfitError(f"setting {key}={value!r}: must be a finite number" + (f" {Interval.parse(range)}" if range else ""))
    if range is not None and typ in (int, float):
        Interval.parse(range).check(key, value)
    if choices and value not in choices:
        raise ClipfitError(f"setting {key}={value!r}: choose one of {', '.join(map(str, choices))}")
    if check is not None and value is not None:
        check(key, value)
    return value


def parse_value(key: str, text: str, typ: Any) -> Any:
    """The typed value of `--set key=text` for a field of type `typ` (the command line's only parser)."""
    typ, optional = _base_type(typ)
    text = text.strip()
    if optional and text.lower() in ("none", "null"):
        return None
    try:
        if typ is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ in (int, float, str):
            return typ(text)
    except ValueError:
        raise ClipfitError(f"--set {key}={text}: expected {getattr(typ, '__name__', typ)}") from None
    return text


def known_fields(config_classes: Iterable[type]) -> dict[str, tuple[Any, tuple[Any, ...] | None, str | None, Any]]:
    """name -> (type, allowed values, range, check) over several config classes (the first class that has a name
    wins)."""
    out: dict[str, tuple[Any, tuple[Any, ...] | None, str | None, Any]] = {}
    for cls in config_classes:
        types = field_types(cls)
        for f in fields(cls):
            out.setdefault(f.name, (types[f.name], f.metadata.get("choices"), f.metadata.get("range"),
                                    f.metadata.get("check")))
    return out


def parse_settings(pairs: Iterable[str], config_classes: Iterable[type]) -> dict[str, Any]:
    """`["key=value", ...]` -> typed `{key: value}`, each key looked up in `config_classes`; unknown keys refused."""
    known = known_fields(config_classes)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ClipfitError(f"--set expects key=value, got {pair!r}")
        if key not in known:
            raise ClipfitError(f"--set {key}: unknown setting; known: {', '.join(sorted(known))}")
        typ, choices, range, check = known[key]
        out[key] = check_value(key, parse_value(key, text, typ), typ, choices, range, check)
    return out


def check_config(cfg: Any) -> None:
    """Check every field of a config dataclass as `apply_settings` checks a setting (its type, choices, `range` and
    `check`): a config built or changed in Python gets the one-line error a `--set` would."""
    types = field_types(cfg.__class__)
    for f in fields(cfg):
        meta = f.metadata
        check_value(f.name, getattr(cfg, f.name), types[f.name], meta.get("choices"), meta.get("range"),
                    meta.get("check"))


def apply_settings(configs: list[Any], settings: Mapping[str, Any], what: str = "setting") -> None:
    """Set typed `settings` on the first config in `configs` that has each field; unknown keys are an error."""
    for key, value in settings.items():
        for cfg in configs:
            fmap = {f.name: f for f in fields(cfg)}
            if key in fmap:
                meta = fmap[key].metadata
                setattr(cfg, key, check_value(key, value, field_types(cfg.__class__)[key], meta.get("choices"),
                                              meta.get("range"), meta.get("check")))
                break
        else:
            known = sorted(f.name for cfg in configs for f in fields(cfg))
            raise ClipfitError(f"{what} {key}: unknown setting; known: {', '.join(known)}")


def describe(cfg_cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, help) for each field of a config dataclass."""
    out = []
    for f in fields(cfg_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        rng = f.metadata.get("range")
        out.append((f.name, default, f.metadata.get("help", "") + (f" [{Interval.parse(rng)}]" if rng else "")))
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)

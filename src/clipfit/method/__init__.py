"""Adaptation methods, one module each, registered by name (`clipfit methods`, `--method`), and presets.

Every module of this package is imported here, which registers its methods: a new method is a new module
(docs/extending.md). What methods share lives in `base` (the contract) and `shared` (the zero-shot anchor, hooks)."""
import importlib
import pkgutil

from .base import (
    METHODS,
    Method,
    MethodConfig,
    MethodEntry,
    Step,
    build_method,
    register_method,
    register_preset,
)
from .shared import ForwardHooks, ZeroShotAnchor

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["METHODS", "ForwardHooks", "Method", "MethodConfig", "MethodEntry", "Step", "ZeroShotAnchor", "build_method",
           "register_method", "register_preset"]

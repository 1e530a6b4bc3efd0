"""Adaptation methods, one module each, registered by name (`clipfit methods`, `--method`), and presets.

Every module of this package is imported here, which registers its methods: a new method is a new module."""
import importlib
import pkgutil

from .base import METHODS, Method, MethodConfig, MethodEntry, build_method, register_method, register_preset

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["METHODS", "Method", "MethodConfig", "MethodEntry", "build_method", "register_method", "register_preset"]

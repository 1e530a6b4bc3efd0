"""Adaptation methods, each registered by name (`clipfit params` / `--method`)."""
from .base import METHODS, Method, build_method, register_method
from . import adapters, clipfit, finetune, layernorm, llu, probes, prompt, zeroshot  # noqa: F401  (registers the methods)

__all__ = ["METHODS", "Method", "build_method", "register_method"]

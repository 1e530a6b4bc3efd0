"""Model families clipfit adapts, chosen from a checkpoint's config: one small adapter each (see base.Family)."""
from . import clip, siglip  # noqa: F401 (registers the families)
from .base import FAMILIES, Family, ImageSpec, Parts, TowerParts, detect_family, register_family, supported

__all__ = ["FAMILIES", "Family", "ImageSpec", "Parts", "TowerParts", "detect_family", "register_family", "supported"]

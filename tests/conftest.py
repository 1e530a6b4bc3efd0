"""Shared fixtures: a tiny random CLIP saved in transformers format and a tiny image folder."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
torch.set_num_threads(2)

def set_args(settings: dict) -> list[str]:
    """`--set key=value` command-line arguments for a dict of settings."""
    return [a for k, v in settings.items() for a in ("--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}")]


def interrupt_after_two_checkpoints(monkeypatch):
    """Make training stop with Ctrl-C right after its second checkpoint; returns the real `save_checkpoint`."""
    from clipfit.engine.rundir import RunDir

    real, calls = RunDir.save_checkpoint, []

    def interrupt_after_two(*a, **kw):
        real(*a, **kw)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", interrupt_after_two)
    return real


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    from clipfit.backbone import make_random_clip

    d = tmp_path_factory.mktemp("tiny_clip")
    return make_random_clip(d, words="a photo of the red green blue".split())


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> str:
    """PATH/<colour>/NN.png: 20 noisy images per class, 40x36 pixels."""
    root = tmp_path_factory.mktemp("tiny_folder")
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        (root / name).mkdir()
        for i in range(20):
            a = np.clip(np.array(rgb)[None, None] + rng.normal(0, 25, (36, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / name / f"{i:02d}.png")
    return str(root)

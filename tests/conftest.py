"""Shared fixtures: a tiny random CLIP saved in transformers format and a tiny image folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

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
def tiny_families(tmp_path_factory) -> dict[str, str]:
    """family name -> folder of a tiny random model of that family (model, tokenizer, image processor)."""
    from clipfit.families.tiny import make_tiny

    return {name: make_tiny(name, tmp_path_factory.mktemp(name), words="a photo of the red green blue".split())
            for name in ("clip", "metaclip_2", "siglip", "siglip2")}


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


def img(path: Path, size=(12, 10), value: int = 0) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, 7)).save(path)
    return str(path)


# ------------------------------------------------------------------ CoOp layout


@pytest.fixture
def coop_root(tmp_path: Path) -> Path:
    r = tmp_path / "data"
    # oxford_pets: split json
    pets = r / "oxford_pets"
    rows = {"train": [], "val": [], "test": []}
    for i, (split, y, c) in enumerate([("train", 1, "yorkshire_terrier"), ("train", 0, "abyssinian"), ("train", 1, "yorkshire_terrier"),
                                       ("val", 0, "abyssinian"), ("test", 0, "abyssinian"), ("test", 1, "yorkshire_terrier")]):
        name = f"{c}_{i}.jpg"
        img(pets / "images" / name, value=i * 30)
        rows[split].append([name, y, c])
    (pets / "split_zhou_OxfordPets.json").write_text(json.dumps(rows))
    # fgvc_aircraft: text files
    air = r / "fgvc_aircraft"
    air.mkdir(parents=True)
    (air / "variants.txt").write_text("707-320\nA300B4\nF-16A/B\n")
    for split, lines in {"train": ["1001 A300B4", "1002 707-320", "1003 F-16A/B"], "val": ["1004 707-320"],
                         "test": ["1005 F-16A/B", "1006 A300B4"]}.items():
        (air / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
        for ln in lines:
            img(air / "images" / f"{ln.split()[0]}.jpg")
    # imagenet: class folders + classnames.txt (README-like file and hidden files must be ignored)
    inet = r / "imagenet"
    inet.mkdir(parents=True)
    (inet / "classnames.txt").write_text("n01440764 tench\nn01443537 goldfish\nn01484850 great white shark\n")
    for split in ("train", "val"):
        for w in ("n01484850", "n01440764", "n01443537"):
            for k in range(2):
                img(inet / "images" / split / w / f"{w}_{k}.JPEG")
    (inet / "images" / "train" / "n01440764" / ".DS_Store").write_text("x")
    # imagenet-adversarial: only some classes, README.txt at the top
    ina = r / "imagenet-adversarial" / "imagenet-a"
    for w in ("n01484850", "n01443537"):
        img(ina / w / "0.jpg")
    (ina / "README.txt").write_text("readme")
    # imagenetv2: folders named by label
    for label in ("2", "0"):
        img(r / "imagenetv2" / "imagenetv2-matched-frequency-format-val" / label / "a.jpeg")
    return r

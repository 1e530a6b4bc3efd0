"""Exact speed-ups: a frozen image tower trains on cached image features, validation only when it decides
something, thread settings, the decoded-image cache at twice the model's input size."""
from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from clipfit.backbone import Backbone
from clipfit.data.transforms import TrainTransform, eval_transform
from clipfit.engine import loop
from clipfit.engine.run import RunSpec, train_run
from clipfit.method import METHODS, build_method

FROZEN_IMAGE_TOWER = {"adapter", "clip_adapter", "cocoop", "compacter", "coop", "kgcoop", "linear_probe", "llu",
                      "logreg_probe", "prograd", "prompt", "tip_adapter", "tip_adapter_f", "zeroshot"}


def test_methods_declare_a_frozen_image_tower_truthfully(tiny_clip):
    """A method that says its image tower is frozen must compute the same frozen image features whatever its
    trainable parameters hold; the ones that train the image side (or change its path) must say so."""
    bb = Backbone.from_pretrained(tiny_clip)
    x = torch.randn(2, 3, bb.image_spec.size, bb.image_spec.size)
    declared = set()
    for name in [n for n in METHODS.list() if not METHODS.get(n).preset]:
        cfg = METHODS.get(name).config()
        if hasattr(cfg, "n_ctx"):
            cfg.n_ctx = 4  # the tiny text encoder has 16 positions
        m = build_method(name, bb, ["red", "green", "blue"], "a photo of a {}.", cfg)
        m.size_for(6)
        m.eval()  # no dropout
        if m.image_tower_frozen:
            declared.add(name)
            before = m.frozen_image_features(x)
            with torch.no_grad():
                for p in m.trainable().values():
                    p.add_(torch.randn_like(p))
            assert torch.equal(m.frozen_image_features(x), before), name
        bb = Backbone.from_pretrained(tiny_clip)  # a method may have unfrozen or changed the shared backbone
    assert declared == FROZEN_IMAGE_TOWER
    # '+ln' presets tune the image LayerNorms: through the images again
    cfg = METHODS.get("coop+ln").config()
    cfg.n_ctx = 4
    assert not build_method("coop+ln", bb, ["red"], "a photo of a {}.", cfg).image_tower_frozen


def _fit_coop(tiny_clip, tiny_folder, tmp_path, name, **settings):
    spec = RunSpec(dataset=f"imagefolder:{tiny_folder}", method="coop", model=tiny_clip, shots=4, seed=3,
                   settings={"epochs": 3, "batch_size": 4, "lr": 0.5, "warmup_epochs": 0, "n_ctx": 4, **settings})
    metrics = train_run(spec, tmp_path / name, progress=False, test=False)
    return load_file(str(tmp_path / name / "tuned.safetensors")), metrics


def test_coop_on_cached_features_equals_coop_through_the_images(tiny_clip, tiny_folder, tmp_path, monkeypatch):
    # augmentation off on both paths (every training view is the evaluation transform): the same batches, the same
    # features, so the same context vectors; only the number of image-encoder passes differs
    monkeypatch.setattr(TrainTransform, "__call__", lambda self, im: eval_transform(self.spec)(im))
    passes = {"n": 0}
    real = loop.Method.frozen_image_features

    def counted(self, x):
        passes["n"] += len(x)
        return real(self, x)

    monkeypatch.setattr(loop.Method, "frozen_image_features", counted)
    images, m_img = _fit_coop(tiny_clip, tiny_folder, tmp_path, "images", feature_cache=False)
    through_images = passes["n"]
    passes["n"] = 0
    feats, m_feat = _fit_coop(tiny_clip, tiny_folder, tmp_path, "features", feature_views=1)
    assert passes["n"] < through_images  # 12 training + 8 validation images once, not every epoch
    assert images.keys() == feats.keys()
    for k in images:
        assert torch.allclose(images[k], feats[k], atol=1e-5), k
    assert [h["loss"] for h in m_img["history"]] == pytest.approx([h["loss"] for h in m_feat["history"]], abs=1e-5)
    assert len({round(h["loss"], 4) for h in m_img["history"]}) == 3  # it learned: the comparison is not trivial


def test_pool_views_cycle_per_epoch(tiny_clip, tiny_folder, tmp_path, monkeypatch):
    """With a pool of V augmented views, epoch e trains on view e mod V; views past the last epoch are not made."""
    seen = []
    real = loop.FeatureSource.batches

    def batches(self):
        seen.append((self.epoch % self.views, self.views))
        return real(self)

    monkeypatch.setattr(loop.FeatureSource, "batches", batches)
    _fit_coop(tiny_clip, tiny_folder, tmp_path, "pool", feature_views=2, crop_scale=0.5)
    assert seen == [(0, 2), (1, 2), (0, 2)]
    seen.clear()
    _fit_coop(tiny_clip, tiny_folder, tmp_path, "capped", feature_views=50, crop_scale=0.5)
    assert seen == [(0, 3), (1, 3), (2, 3)]


@pytest.mark.parametrize("select, validate, expect_calls, expect_epochs", [
    ("last", "auto", 1, [3]),
    ("last", "always", 3, [1, 2, 3]),
    ("best", "auto", 3, [1, 2, 3]),
    ("last", "never", 0, []),
])
def test_validation_runs_only_when_it_decides_something(tiny_clip, tiny_folder, tmp_path, monkeypatch, select,
                                                        validate, expect_calls, expect_epochs):
    calls = []
    for source in (loop.ImageSource, loop.FeatureSource):
        real = source.validate
        monkeypatch.setattr(source, "validate", lambda self, real=real: calls.append(1) or real(self))
    _, metrics = _fit_coop(tiny_clip, tiny_folder, tmp_path, "run", select=select, validate=validate)
    assert len(calls) == expect_calls
    assert [h["epoch"] for h in metrics["history"] if "val_accuracy" in h] == expect_epochs
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["validated"].startswith({1: "last epoch", 3: "every epoch", 0: "never"}[expect_calls])


def test_never_validating_cannot_choose_the_best_epoch(tiny_clip, tiny_folder, tmp_path):
    from clipfit.errors import ClipfitError

    with pytest.raises(ClipfitError, match="validate=never"):
        _fit_coop(tiny_clip, tiny_folder, tmp_path, "run", select="best", validate="never")


def test_threads_are_set_at_the_edge(tiny_clip, tiny_folder, tmp_path, monkeypatch):
    from clipfit import api, threads
    from clipfit.cli import main

    monkeypatch.setattr(threads, "_asked", None)
    before = torch.get_num_threads()
    try:
        args = ["train", "--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "2", "--quiet",
                "--set", "epochs=1", "--no-test"]
        assert main([*args, "--out", str(tmp_path / "a"), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(threads, "_asked", None)
        api.train(tiny_clip, dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "b", shots=2, epochs=1, test=False,
                  progress=False, threads=3)
        assert torch.get_num_threads() == 3
        # nothing asked: OMP_NUM_THREADS, else the free cores (less the load average), at most 4
        monkeypatch.setattr(threads, "_asked", None)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.set_threads() == 2 == torch.get_num_threads()
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(threads, "cores", lambda: 16)
        monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
        assert threads.default_threads() == threads.MAX_DEFAULT_THREADS
        monkeypatch.setattr(os, "getloadavg", lambda: (14.6, 0.0, 0.0))
        assert threads.default_threads() == 1
        assert main([*args, "--out", str(tmp_path / "c"), "--threads", "0"]) == 2
    finally:
        torch.set_num_threads(before)


def test_decoded_images_are_kept_at_twice_the_input_size(tmp_path):
    import numpy as np
    from PIL import Image

    from clipfit.backbone import ImageSpec
    from clipfit.data.images import FileReader, check_images
    from clipfit.data.transforms import ImageDataset, cache_side, train_transform
    from clipfit.data.types import Item, Task

    rng = np.random.default_rng(0)
    for name, (w, h) in {"big.png": (300, 200), "small.png": (40, 36)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
    items = [Item("big.png", 0, "a"), Item("small.png", 0, "a")]
    spec = ImageSpec(size=32, mean=(0.5,) * 3, std=(0.25,) * 3, resize=32)
    assert cache_side(spec) == 64
    ds = ImageDataset(items, FileReader(tmp_path), train_transform(spec, scale=(0.08, 1.0)), cache=True,
                      cache_short=cache_side(spec))
    assert ds[0][0].shape == ds[1][0].shape == (3, 32, 32)
    assert ds._cache[0].size == (96, 64)  # shorter side 2 x 32, aspect kept
    assert ds._cache[1].size == (40, 36)  # never enlarged
    task = Task("t", ["a"], "{}", items, [], [], FileReader(tmp_path))
    kept = check_images(task, keep_short=64).reader.images
    assert kept["big.png"].size == (96, 64) and kept["small.png"].size == (40, 36)
    assert check_images(task).reader.images["big.png"].size == (300, 200)  # no size given: as decoded


def test_a_run_keeps_its_training_images_at_twice_the_input_size(tiny_clip, tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from clipfit.data import images

    for c in ("red", "green"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((150, 120, 3), 40 * i, np.uint8)).save(tmp_path / "data" / c / f"{i}.png")
    kept = {}
    real = images.check_images

    def spy(task, *a, **kw):
        out = real(task, *a, **kw)
        kept.update(getattr(out.reader, "images", {}))
        return out

    monkeypatch.setattr("clipfit.engine.run.check_images", spy)
    spec = RunSpec(dataset=f"imagefolder:{tmp_path / 'data'}", method="coop", model=tiny_clip, shots=2,
                   settings={"epochs": 1, "n_ctx": 4})
    train_run(spec, tmp_path / "run", progress=False, test=False)
    size = Backbone.from_pretrained(tiny_clip).image_spec.size
    assert kept and all(min(im.size) == 2 * size for im in kept.values())

"""The training loop: learning-rate schedules, a budget of optimiser steps, and the hooks methods may override."""
from __future__ import annotations

import math

import pytest

from clipfit.config import TrainConfig
from clipfit.engine.loop import lr_at
from clipfit.engine.run import RunSpec, train_run
from clipfit.method.base import Method


def test_dassl_cosine_is_shifted_by_the_warmup_epoch():
    # Dassl's warm-up wrapper + CosineAnnealingLR(T_max=epochs): epoch 0 at 1e-5, then the cosine from epoch 1
    cfg = TrainConfig(lr=0.0035, epochs=5, warmup_epochs=1, warmup_lr=1e-5)
    assert [round(lr_at(e, cfg), 7) for e in range(5)] == [1e-05, 0.0035, 0.0031658, 0.0022908, 0.0012092]


def test_per_step_cosine_reaches_min_lr():
    cfg = TrainConfig(lr=2e-4, epochs=2, warmup_epochs=0, schedule_unit="step", min_lr=1e-6)
    lrs = [lr_at(e, cfg, s, 10) for e in range(2) for s in range(10)]
    assert lrs[0] == pytest.approx(2e-4) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert lr_at(2, cfg, 0, 10) == pytest.approx(1e-6)  # the step after the last
    mid = 1e-6 + 0.5 * (2e-4 - 1e-6) * (1 + math.cos(math.pi * 7 / 20))
    assert lrs[7] == pytest.approx(mid)


def test_iterations_budget_and_hooks(tiny_clip, tiny_folder, tmp_path, monkeypatch):
    calls = {"backward": 0, "epoch_end": [], "train_end": 0}
    real = Method.backward

    def backward(self, loss):
        calls["backward"] += 1
        real(self, loss)

    monkeypatch.setattr(Method, "backward", backward)
    monkeypatch.setattr(Method, "on_epoch_end", lambda self, e, n: calls["epoch_end"].append((e, n)))
    monkeypatch.setattr(Method, "on_train_end", lambda self: calls.__setitem__("train_end", calls["train_end"] + 1))
    # 3 classes x 4 shots = 12 images, batch 4: 3 steps an epoch; 5 steps = 2 epochs, the second cut short
    spec = RunSpec(dataset=f"imagefolder:{tiny_folder}", model=tiny_clip, shots=4,
                   settings={"iterations": 5, "batch_size": 4, "warmup_epochs": 0})
    m = train_run(spec, tmp_path / "run", progress=False, test=False)
    assert calls == {"backward": 5, "epoch_end": [(1, 2), (2, 2)], "train_end": 1}
    assert [h["epoch"] for h in m["history"]] == [1, 2]

"""Learning tests on the embedded mini-clip and the shifted procedural task (fixed seed, margins from measurement).

Measured with these exact settings (16 shots, seed 1, 30 epochs, crop scale 0.5, paper's SGD recipe otherwise, the
last epoch tested as the CoOp protocol does), test accuracy on synth_shift, base / new (16-way each), on the shipped
mini-clip (its text residual normalised, see clipfit.pretrain.normalise_for_finetuning):
    zero-shot                      51.00 / 33.13
    CLIPFit                        63.00 / 41.13
    CLIPFit, lr 0                  51.00 / 33.13   (identical to zero-shot, as it must be)
    CLIPFit without image LNs      60.25 / 46.50   (the text FFN biases alone)
    CLIPFit, beta 0 (no KD)        62.25 / 40.38
Both parameter groups learn on their own. The image LayerNorms add 2.8 points on the base classes and cost 5.4 on
the new ones here (the CLIPFit paper's Table 6 finds them adding on both); KD moves both by under a point in this
world, where the base and new classes share one shift (tests/test_forgetting.py has a world where tuning misleads).
"""
from __future__ import annotations

import pytest

from clipfit.engine.run import RunSpec, eval_run, train_run

pytestmark = pytest.mark.slow

SETTINGS = {"epochs": 30, "crop_scale": 0.5}


def _run(tmp_path_factory, name: str, sets: dict) -> tuple[float, float]:
    out = tmp_path_factory.mktemp(name)
    spec = RunSpec(dataset="synth_shift", method="zeroshot" if name == "zeroshot" else "clipfit", subsample="base",
                   shots=16, seed=1, settings={} if name == "zeroshot" else {**SETTINGS, **sets})
    m = train_run(spec, out / "run", progress=False)
    new = eval_run(out / "run", subsample="new", progress=False)["accuracy"]
    return m["test"]["base"]["accuracy"], new


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[float, float]]:
    runs = {"zeroshot": {}, "clipfit": {}, "lr0": {"lr": 0.0, "warmup_lr": 0.0}, "no_ln": {"image_layernorm": False},
            "no_kd": {"beta": 0.0}}
    return {name: _run(tmp_path_factory, name, sets) for name, sets in runs.items()}


def test_clipfit_beats_zero_shot_on_base_and_new(results):
    (zb, zn), (cb, cn) = results["zeroshot"], results["clipfit"]
    assert cb >= zb + 8.0, (cb, zb)  # measured +12.0
    assert cn >= zn + 5.0, (cn, zn)  # measured +8.0: the tuning helps classes never tuned on


def test_learning_rate_zero_is_zero_shot(results):
    assert results["lr0"] == pytest.approx(results["zeroshot"], abs=1e-9)


def test_text_biases_learn_on_their_own(results):
    (zb, zn), (tb, tn) = results["zeroshot"], results["no_ln"]
    assert tb >= zb + 6.0 and tn >= zn + 8.0, (tb, tn)  # measured +9.3 / +13.4


def test_kd_has_no_measurable_effect_in_this_world(results):
    (kb, kn), (nb, nn) = results["clipfit"], results["no_kd"]
    assert abs(kb - nb) < 2.0 and abs(kn - nn) < 2.0

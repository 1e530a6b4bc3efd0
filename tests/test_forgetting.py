"""Learning tests of the papers' central phenomenon on the embedded mini-clip: tuning on base classes can damage what
the model knew about new classes, and regularising toward the zero-shot model protects some of it.

Task `synth_conflict` (clipfit.data.synth): 12 classes named by a colour and a shape; the 6 base classes are sorted
by colour (half of their images show another shape than the name says), the 6 new classes by shape (half of their
images show another colour). Tuning on the base classes learns to trust colour words and discount shape words, the
opposite of what the new classes need. 16 shots, seed 1, each method's paper recipe, crop scale 0.5 (32x32 images).

Measured with exactly these runs (base / new test accuracy in %; 50 test images per class, 300 per half):
    zero-shot                                     79.33 / 80.67
    CoOp (4 ctx "a photo of a", 200 epochs)      100.00 / 55.00   (new -25.7)
    CLIPFit bias strategy (a), CE only             97.67 / 57.00   (new -23.7)
    KgCoOp (lambda 8)                              91.33 / 63.67   (new +8.7 over CoOp)
    KgCoOp, lambda 0                              100.00 / 54.67   (its recipe without its regulariser)
    CLIPFit without image LayerNorms, beta 8       81.67 / 77.00   (the text FFN biases with KD)
    CLIPFit without image LayerNorms, beta 0       83.67 / 73.67   (KD off: new -3.3)
Over seeds 1 2 3 (README): KgCoOp recovers 33% of CoOp's loss, not half as in the papers. Full CLIPFit's KD (beta 8
vs 0) makes no measurable difference (62.67 vs 62.44 new): its image LayerNorms carry the damage and KD anchors only
the text side; on the text biases alone KD protects the new classes (76.00 +- 1.20 vs 73.22 +- 1.07).
"""
from __future__ import annotations

import pytest

from clipfit.engine.run import RunSpec, eval_run, train_run

pytestmark = pytest.mark.slow

BASE = {"crop_scale": 0.5}


def _run(tmp_path_factory, method: str, settings: dict) -> tuple[float, float]:
    out = tmp_path_factory.mktemp(method.replace("+", "_")) / "run"
    spec = RunSpec(dataset="synth_conflict", method=method, subsample="base", protocol="base2new", shots=16, seed=1,
                   settings={**BASE, **settings})
    m = train_run(spec, out, progress=False)
    new = eval_run(out, subsample="new", progress=False)["accuracy"]
    return m["test"]["base"]["accuracy"], new


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[float, float]]:
    runs = {
        "zeroshot": ("zeroshot", {}),
        "coop": ("coop", {}),
        "kgcoop": ("kgcoop", {}),
        "kgcoop_lambda0": ("kgcoop", {"kg_weight": 0.0}),
        "bias_a": ("clipfit", {"bias": "text_image", "image_layernorm": False, "reg": "none"}),
        "text_kd": ("clipfit:no_ln", {}),
        "text_kd0": ("clipfit:no_ln", {"beta": 0.0}),
    }
    return {name: _run(tmp_path_factory, method, s) for name, (method, s) in runs.items()}


def test_zero_shot_knows_the_new_classes(results):
    assert results["zeroshot"][1] >= 50.0  # measured 80.67


def test_coop_forgets_the_new_classes(results):
    (zb, zn), (cb, cn) = results["zeroshot"], results["coop"]
    assert cb >= zb + 10.0  # measured +20.7: it does learn the base classes
    assert cn <= zn - 10.0  # measured -25.7


def test_bias_tuning_without_distillation_forgets(results):
    assert results["bias_a"][1] <= results["zeroshot"][1] - 10.0  # measured -23.7


def test_knowledge_guidance_protects_the_new_classes(results):
    # KgCoOp's regulariser, not its shorter recipe, is what keeps new-class accuracy: with lambda 0 it forgets
    kg, kg0, coop = results["kgcoop"][1], results["kgcoop_lambda0"][1], results["coop"][1]
    assert kg >= coop + 4.0  # measured +8.7
    assert kg >= kg0 + 4.0  # measured +9.0


def test_distillation_protects_the_new_classes_through_the_text_biases(results):
    # CLIPFit's KD term acts on the text side: with the image LayerNorms frozen, switching it off costs new classes
    assert results["text_kd"][1] >= results["text_kd0"][1] + 1.5  # measured +3.3 (seeds 1 2 3: +3.3, +2.3, +2.7)

"""Learning tests of the papers' central phenomenon on the embedded mini-clip: tuning on base classes can damage what
the model knew about new classes, and regularising toward the zero-shot model protects it.

Task `synth_forget` (clipfit.data.synth): 12 classes named by a colour and a shape; the 6 base classes are sorted by
colour (half of their images show a star or a crescent, shapes no class is named after), the 6 new classes by shape
(half of their images show another colour); every image has a random colour cast. Zero-shot gets most base images
right; tuning keeps widening the base classes' colour margins, which a shared prompt buys by discounting shape words,
and the new classes pay for it. 16 shots, seed 1, each method's paper recipe, crop scale 0.5 (32x32 images).

Measured with exactly these runs (base / new test accuracy in %; 50 test images per class, 300 per half):
    zero-shot                                      95.00 / 77.00
    CoOp (4 ctx "a photo of a", 200 epochs)        93.67 / 58.67   (new -18.3)
    CLIPFit bias strategy (a), CE only             97.00 / 65.00   (new -12.0)
    KgCoOp (lambda 8)                              95.33 / 68.67   (recovers 55% of CoOp's loss; seeds 1-3: 63%)
    KgCoOp, lambda 0                               93.33 / 61.67   (its recipe without its regulariser)
On `synth_conflict` (the base images' other shapes are the named ones, no cast), CLIPFit's KD on the text side:
    CLIPFit without image LayerNorms, beta 8       81.67 / 77.00   (the text FFN biases with KD)
    CLIPFit without image LayerNorms, beta 0       83.67 / 73.67   (KD off: new -3.3)
Full CLIPFit's KD (beta 8 vs 0) makes no measurable difference on either task (README, "Forgetting"): the image
LayerNorms carry the damage and KD anchors only the text side.
"""
from __future__ import annotations

import pytest

from clipfit.engine.run import RunSpec, eval_run, train_run

pytestmark = pytest.mark.slow

BASE = {"crop_scale": 0.5}


def _run(tmp_path_factory, dataset: str, method: str, settings: dict) -> tuple[float, float]:
    out = tmp_path_factory.mktemp(method.replace("+", "_").replace(":", "_")) / "run"
    spec = RunSpec(dataset=dataset, method=method, subsample="base", protocol="base2new", shots=16, seed=1,
                   settings={**BASE, **settings})
    m = train_run(spec, out, progress=False)
    new = eval_run(out, subsample="new", progress=False)["accuracy"]
    return m["test"]["base"]["accuracy"], new


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[float, float]]:
    runs = {
        "zeroshot": ("synth_forget", "zeroshot", {}),
        "coop": ("synth_forget", "coop", {}),
        "kgcoop": ("synth_forget", "kgcoop", {}),
        "kgcoop_lambda0": ("synth_forget", "kgcoop", {"kg_weight": 0.0}),
        "bias_a": ("synth_forget", "clipfit", {"bias": "text_image", "image_layernorm": False, "reg": "none"}),
        "text_kd": ("synth_conflict", "clipfit:no_ln", {}),
        "text_kd0": ("synth_conflict", "clipfit:no_ln", {"beta": 0.0}),
    }
    return {name: _run(tmp_path_factory, *run) for name, run in runs.items()}


def test_zero_shot_knows_the_new_classes(results):
    assert results["zeroshot"][1] >= 50.0  # measured 77.00


def test_coop_forgets_the_new_classes(results):
    (zb, zn), (cb, cn) = results["zeroshot"], results["coop"]
    assert cb >= zb - 5.0  # measured -1.3: it still knows the base classes
    assert cn <= zn - 10.0  # measured -18.3


def test_bias_tuning_without_distillation_forgets(results):
    assert results["bias_a"][1] <= results["zeroshot"][1] - 5.0  # measured -12.0


def test_knowledge_guidance_protects_the_new_classes(results):
    # KgCoOp's regulariser, not its shorter recipe, is what keeps new-class accuracy: with lambda 0 it forgets
    kg, kg0, coop = results["kgcoop"][1], results["kgcoop_lambda0"][1], results["coop"][1]
    assert kg >= coop + 6.0  # measured +10.0
    assert kg >= kg0 + 4.0  # measured +7.0 (seeds 1 2 3: +7.0, +9.7, +9.3)


def test_distillation_protects_the_new_classes_through_the_text_biases(results):
    # CLIPFit's KD term acts on the text side: with the image LayerNorms frozen, switching it off costs new classes
    assert results["text_kd"][1] >= results["text_kd0"][1] + 1.5  # measured +3.3 (seeds 1 2 3: +3.3, +2.3, +2.7)

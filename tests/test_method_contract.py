"""The method contract, checked over every registered method and preset (`METHODS`): on the tiny CLIP each trains one
step through the engine, changes only the parameters it declares (`trainable`), saves exactly those and what it
stores, reloads to identical logits, exports a merged checkpoint if and only if it says it is `mergeable`, and counts
its parameters as `clipfit params` does."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import CLIPConfig

from clipfit.backbone import Backbone, make_random_clip
from clipfit.engine import use
from clipfit.engine.loop import seed_everything
from clipfit.engine.run import RunSpec, eval_run, load_run, make_method, train_run
from clipfit.errors import ClipfitError
from clipfit.io import load_tensors
from clipfit.method import METHODS

ONE_STEP = {"epochs": 1, "iterations": 1, "batch_size": 4, "warmup_epochs": 0, "lr": 0.05}
P = "backbone.model."


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    """The tiny CLIP with room for CoOp's 16 context vectors in its prompts."""
    return make_random_clip(tmp_path_factory.mktemp("contract_clip"), words="a photo of the red green blue".split(),
                            max_length=32)


def _images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def _logits(method, x):
    with torch.no_grad():
        return method.logits(method.image_features(x), method.text_features())


@pytest.mark.parametrize("name", METHODS.list())
def test_method_keeps_the_contract(name, clip, tiny_folder, tmp_path, monkeypatch):
    bb = Backbone.from_pretrained(clip)
    before = {n: p.detach().clone() for n, p in bb.model.named_parameters()}
    out = tmp_path / "run"
    spec = RunSpec(dataset=f"imagefolder:{tiny_folder}", model=clip, method=name, shots=2, seed=1,
                   settings=ONE_STEP)
    metrics = train_run(spec, out, progress=False, backbone=bb)
    a, b = load_run(out), load_run(out)
    m = a.method
    declared = set(m.trainable())

    # only the declared backbone parameters moved, bit for bit
    changed = {n for n, p in bb.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed <= {n.removeprefix(P) for n in declared if n.startswith(P)}, sorted(changed)[:5]
    # the run saved the declared tensors (fp32 master weights) and what the method stores, nothing else
    tuned = load_tensors(out / "tuned.safetensors")
    assert set(tuned) == declared | set(m.stored_state())
    assert all(tuned[n].dtype == torch.float32 for n in declared)
    # a method that trains by gradient moved something from where training started
    if declared and not m.closed_form:
        start = make_method(name, Backbone.from_pretrained(clip), m.classnames, m.templates, m.cfg)
        start.size_for(len(json.loads((out / "items.json").read_text())["train"]))
        seed_everything(1)
        start.reset_parameters()
        init = start.tuned_state()
        assert any(not torch.equal(init[n], tuned[n]) for n in declared), "one step changed nothing"

    # reloading gives identical logits, and the test accuracy training reported
    x = _images()
    assert torch.equal(_logits(m, x), _logits(b.method, x))
    if "test" in metrics:
        assert eval_run(out, progress=False, loaded=a)["accuracy"] == pytest.approx(metrics["test"]["all"]["accuracy"])

    # a merged export exactly when the method says it is mergeable
    if m.mergeable:
        use.export_merged(out, tmp_path / "merged")
        assert (tmp_path / "merged" / "config.json").exists()
    else:
        with pytest.raises(ClipfitError):
            use.export_merged(out, tmp_path / "merged")

    # `clipfit params` counts what the run trained (on this architecture, for the run's settings)
    tiny = CLIPConfig.from_pretrained(clip)
    monkeypatch.setattr(use, "clip_config", lambda arch: tiny)
    config = json.loads((out / "config.json").read_text())
    count = use.count_parameters(name, "tiny", num_classes=len(m.classnames), settings=config["method_config"],
                                 shots=spec.shots)
    assert count["trainable"] == metrics["trainable_parameters"] == m.num_trainable()

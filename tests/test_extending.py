"""docs/extending.md's example method: read from the guide, registered, trained through the engine, and keeping the
contract every registered method keeps."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import torch

from clipfit.backbone import Backbone, make_random_clip
from clipfit.engine.run import RunSpec, train_run
from clipfit.method import METHODS
from test_method_contract import test_method_keeps_the_contract as keeps_the_contract

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _example() -> str:
    return re.search(r"```python\n(.*?)```", GUIDE.read_text(), re.S).group(1)


def test_the_guides_example_method_trains_and_keeps_the_contract(tiny_folder, tmp_path, monkeypatch):
    code = _example()
    assert len(code.splitlines()) <= 60  # a method that distils to zero-shot text in one short module
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))  # registered for this test only
    (tmp_path / "text_ln_kd.py").write_text(code)
    spec = importlib.util.spec_from_file_location("text_ln_kd", tmp_path / "text_ln_kd.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "text_ln_kd", module)
    spec.loader.exec_module(module)  # importing the module registers its method and preset
    assert "text_ln_kd" in METHODS and METHODS.get("text_ln_kd:strong").config().beta == 8.0

    clip = make_random_clip(tmp_path / "clip", words="a photo of the red green blue".split(), max_length=32)
    bb = Backbone.from_pretrained(clip)
    before = {n: p.detach().clone() for n, p in bb.model.named_parameters()}
    run = RunSpec(dataset=f"imagefolder:{tiny_folder}", model=clip, method="text_ln_kd", shots=2, seed=1,
                  settings={"epochs": 2, "batch_size": 4, "warmup_epochs": 0, "lr": 0.05, "beta": 8.0})
    metrics = train_run(run, tmp_path / "run", progress=False, backbone=bb)
    changed = {n for n, p in bb.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and all(n.startswith("text_model.") and ("layer_norm" in n or "final_layer_norm" in n)
                           for n in changed)  # only the text LayerNorms trained
    history = metrics["history"]
    assert abs(history[0]["kd"]) < 1e-5 < history[-1]["kd"]  # the anchor: zero at the start, then a real term
    assert json.loads((tmp_path / "run" / "config.json").read_text())["method_config"]["beta"] == 8.0

    keeps_the_contract("text_ln_kd", clip, tiny_folder, tmp_path / "contract", monkeypatch)

"""Beyond one process: grids on Ray give the in-process results, multi-process data-parallel training gives the
one-process result; many classes: text encoded in chunks gives the same logits and gradients."""
from __future__ import annotations

import importlib.util
import json

import pytest

import clipfit
from clipfit.cli import main

FAST = {"epochs": 1, "batch_size": 4, "lr": 0.05, "warmup_epochs": 0}
HAS_RAY = importlib.util.find_spec("ray") is not None


def _rows(res) -> list[dict]:
    return json.loads(json.dumps(res.summary["rows"]))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'clipfit[ray]')")
def test_a_grid_on_ray_gives_the_in_process_results_and_resumes_like_it(tiny_clip, tiny_folder, tmp_path, monkeypatch):
    import ray

    from clipfit.protocols.executors import ray_executor

    ds = f"imagefolder:{tiny_folder}"
    # a first stage ('prompt@layernorm' needs layernorm's run), a method that runs once, two seeds
    kw = dict(dataset=ds, methods=["zeroshot", "clipfit", "prompt@layernorm"], seeds=[1, 2], shots=2,
              progress=False, device="cpu", **FAST)
    local = clipfit.fewshot(tiny_clip, out=tmp_path / "local", **kw)
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    try:
        remote = clipfit.fewshot(tiny_clip, out=tmp_path / "ray", executor=ray_executor(), **kw)
        assert _rows(remote) == _rows(local)
        assert json.loads((tmp_path / "ray" / "results.json").read_text())["rows"] == _rows(local)
        metrics = sorted((tmp_path / "ray").rglob("metrics.json"))
        assert len(metrics) == 1 + 2 + 2 * 2  # zero-shot once, clipfit x 2 seeds, layernorm and prompt x 2 seeds
        stamps = {p: p.stat().st_mtime_ns for p in metrics}
        # a second Ray pass reuses every finished run
        again = clipfit.fewshot(tiny_clip, out=tmp_path / "ray", executor=ray_executor(), **kw)
        assert _rows(again) == _rows(local) and {p: p.stat().st_mtime_ns for p in metrics} == stamps
    finally:
        ray.shutdown()
    # the runs Ray wrote are the runs the in-process executor reuses
    import clipfit.protocols.core as core

    monkeypatch.setattr(core, "train_run", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert _rows(clipfit.fewshot(tiny_clip, out=tmp_path / "ray", **kw)) == _rows(local)


def test_executor_ray_without_ray_is_one_line_naming_the_extra(tiny_clip, tiny_folder, tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    args = ["fewshot", "--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "1", "--methods",
            "zeroshot", "--seeds", "1", "--out", str(tmp_path / "g"), "--quiet", "--executor", "ray"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "clipfit[ray]" in err
    assert not (tmp_path / "g").exists()
    assert main(args[:-2] + ["--address", "auto"]) == 2
    assert "--executor ray" in capsys.readouterr().err

"""Beyond one process: grids on Ray give the in-process results, multi-process data-parallel training gives the
one-process result; many classes: text encoded in chunks gives the same logits and gradients."""
from __future__ import annotations

import copy
import importlib.util
import json

import pytest
import torch

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
    import clipfit.protocols.jobs as jobs

    monkeypatch.setattr(jobs, "train_run", lambda *a, **k: pytest.fail("a finished run was trained again"))
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args: list[str], world: int, cwd) -> None:
    """`clipfit ARGS` in `world` processes, with the environment a launcher (accelerate launch, torchrun) sets."""
    import os
    import subprocess
    import sys

    port = _free_port()
    src = str(__import__("pathlib").Path(clipfit.__file__).parents[1])
    procs = []
    for rank in range(world):
        env = {**os.environ, "WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1", "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "ACCELERATE_USE_CPU": "true"}
        procs.append(subprocess.Popen([sys.executable, "-m", "clipfit.cli", *args], env=env, cwd=cwd,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(outs)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None,
                    reason="accelerate is not installed (pip install 'clipfit[multi]')")
def test_two_processes_train_what_one_process_trains_with_the_same_global_batch(tiny_clip, tiny_folder, tmp_path):
    from clipfit.engine.rundir import RunDir
    from conftest import set_args

    ds = f"imagefolder:{tiny_folder}"
    settings = {"epochs": 2, "batch_size": 6, "lr": 0.05, "warmup_epochs": 0, "eval_batch_size": 7}
    one = clipfit.train(tiny_clip, dataset=ds, out=tmp_path / "one", method="clipfit", shots=4, seed=3, device="cpu",
                        progress=False, **settings)
    _launch(["train", "--model", tiny_clip, "--dataset", ds, "--out", str(tmp_path / "two"), "--method", "clipfit",
             "--shots", "4", "--seed", "3", "--device", "cpu", "--quiet", *set_args(settings)], 2, tmp_path)
    two = RunDir(tmp_path / "two")
    assert two.is_finished and not list(tmp_path.glob("two.*"))  # one run directory, committed, no leftovers
    a, b = RunDir(tmp_path / "one").read_tuned(), two.read_tuned()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4)
    # the tolerance tells batches apart: one process with a batch of 3 (what each of the two saw) ends elsewhere
    half = clipfit.train(tiny_clip, dataset=ds, out=tmp_path / "half", method="clipfit", shots=4, seed=3,
                         device="cpu", progress=False, **{**settings, "batch_size": 3})
    c = RunDir(half.dir).read_tuned()
    assert max(float((c[k] - a[k]).abs().max()) for k in a) > 1e-3
    m1, m2 = one.metrics, two.read_metrics()
    assert m2["test"]["all"] == m1["test"]["all"]  # evaluation split over the processes, gathered in order
    for h1, h2 in zip(m1["history"], m2["history"], strict=True):  # the logged loss is the global batch's
        assert h2["loss"] == pytest.approx(h1["loss"], rel=1e-5)
        assert h2.get("val_accuracy") == h1.get("val_accuracy")  # select=last: validated after the last epoch only


# -- many classes: the text encoder in chunks -------------------------------------------------------------------------

WORDS = ["red", "green", "blue", "a red photo", "the green blue", "photo of red", "blue of the photo"]


@pytest.mark.parametrize("method,extra", [("coop", {}), ("prompt+ln", {}), ("kgcoop", {}),
                                          ("cocoop", {"max_prompts": 1000})])
def test_text_in_chunks_gives_the_logits_and_gradients_of_all_classes_at_once(tiny_clip, method, extra):
    from clipfit.backbone import Backbone
    from clipfit.engine.loop import forward_step
    from clipfit.method import METHODS, build_method

    torch.manual_seed(0)
    backbone = Backbone.from_pretrained(tiny_clip)
    images = torch.randn(3, 3, backbone.image_spec.size, backbone.image_spec.size)
    labels = torch.tensor([0, 4, 6])
    results = []
    for chunk in (0, 3):  # 7 classes: chunks of 3, 3 and 1
        cfg = METHODS.get(method).config()
        for k, v in {"text_chunk": chunk, "n_ctx": 4, **extra}.items():
            setattr(cfg, k, v)
        torch.manual_seed(1)
        m = build_method(method, copy.deepcopy(backbone), WORDS, "a photo of {}.", cfg)
        m.on_train_start()
        m.train()
        step = forward_step(m, m.image_features, images, labels, None, torch.device("cpu"), "fp32")
        step.loss, _ = m.loss(step)
        m.backward(step)
        results.append((step.logits.detach(), {k: p.grad.clone() for k, p in m.trainable().items()}))
    (l0, g0), (l1, g1) = results
    torch.testing.assert_close(l1, l0, atol=1e-5, rtol=1e-5)
    assert g0.keys() == g1.keys() and len(g0) > (1 if method == "prompt+ln" else 0)
    for k in g0:
        assert g0[k].abs().sum() > 0
        torch.testing.assert_close(g1[k], g0[k], atol=1e-5, rtol=1e-5)


def test_the_fixed_token_embeddings_are_looked_up_once_and_follow_classes_and_weights(tiny_clip):
    from clipfit.backbone import Backbone
    from clipfit.method import METHODS, build_method

    cfg = METHODS.get("coop").config()
    cfg.n_ctx = 4
    m = build_method("coop", Backbone.from_pretrained(tiny_clip), WORDS[:3], "a photo of {}.", cfg)
    emb = m.backbone.model.text_model.embeddings.token_embedding
    first = m.prompt_embeds()[0]
    assert m.prompt_embeds()[0] is first  # kept
    torch.testing.assert_close(first, emb(m._ids), atol=0, rtol=0)
    m.set_classes(WORDS[3:])
    torch.testing.assert_close(m.prompt_embeds()[0], emb(m._ids), atol=0, rtol=0)  # new classes: new lookup
    with torch.no_grad():
        emb.weight.mul_(2)  # weights changed in place (e.g. a first stage loaded)
    torch.testing.assert_close(m.prompt_embeds()[0], emb(m._ids), atol=0, rtol=0)


# -- the GPU path, checked on CPU ---------------------------------------------------------------------------------


def test_the_backbone_attends_through_sdpa_and_matches_eager_attention(tiny_clip):
    from transformers import CLIPModel

    from clipfit.backbone import Backbone
    from clipfit.method import METHODS, build_method

    bb = Backbone.from_pretrained(tiny_clip)
    assert bb.model.text_model.config._attn_implementation == "sdpa"
    assert bb.model.vision_model.config._attn_implementation == "sdpa"
    eager = copy.deepcopy(bb)
    eager.model = CLIPModel.from_pretrained(tiny_clip, attn_implementation="eager")
    assert eager.model.text_model.config._attn_implementation == "eager"
    torch.manual_seed(0)
    images = torch.randn(2, 3, bb.image_spec.size, bb.image_spec.size)
    torch.testing.assert_close(bb.encode_image(images), eager.encode_image(images), atol=1e-5, rtol=1e-5)
    cfg = METHODS.get("coop").config()
    cfg.n_ctx = 4
    feats = []
    for b in (bb, eager):  # prompts of different lengths: the padding mask matters
        torch.manual_seed(1)
        feats.append(build_method("coop", b, WORDS, "a photo of {}.", cfg).text_features())
    torch.testing.assert_close(feats[0], feats[1], atol=1e-5, rtol=1e-5)


def test_bf16_autocast_keeps_fp32_master_weights_and_gradients(tiny_clip, tiny_folder, tmp_path):
    from clipfit.backbone import Backbone
    from clipfit.engine.loop import forward_step
    from clipfit.method import build_method

    m = build_method("clipfit", Backbone.from_pretrained(tiny_clip), ["red", "green", "blue"], "a photo of {}.")
    m.on_train_start()
    m.train()
    images = torch.randn(4, 3, m.backbone.image_spec.size, m.backbone.image_spec.size)
    step = forward_step(m, m.image_features, images, torch.tensor([0, 1, 2, 0]), None, torch.device("cpu"), "bf16")
    assert step.logits.dtype == torch.bfloat16  # the forward ran in bf16
    step.loss, _ = m.loss(step)
    m.backward(step)
    params = m.trainable()
    assert params and all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in params.values())
    # a whole run in bf16: it learns, and its tuned weights are fp32
    run = clipfit.train(tiny_clip, dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "bf16", method="clipfit",
                        shots=2, device="cpu", progress=False, precision="bf16", **FAST)
    from clipfit.engine.rundir import RunDir

    tuned = RunDir(run.dir).read_tuned()
    assert tuned and all(t.dtype == torch.float32 for t in tuned.values())


def _cxx() -> str | None:
    """The C++ compiler inductor (torch.compile's default backend) builds CPU kernels with, if there is one."""
    import os
    import shutil

    return next((c for c in (os.environ.get("CXX"), "g++", "clang++", "c++") if c and shutil.which(c)), None)


@pytest.mark.slow
@pytest.mark.skipif(_cxx() is None, reason="no C++ compiler: torch.compile's inductor backend cannot build CPU kernels "
                                           "(benchmarks/gpu_check.py --quick checks graph capture with aot_eager)")
def test_compile_trains_the_same_weights(tiny_clip, tiny_folder, tmp_path):
    from clipfit.engine.rundir import RunDir

    ds = f"imagefolder:{tiny_folder}"
    kw = dict(dataset=ds, method="clipfit", shots=2, device="cpu", progress=False, **FAST)
    plain = RunDir(clipfit.train(tiny_clip, out=tmp_path / "plain", **kw).dir).read_tuned()
    compiled = RunDir(clipfit.train(tiny_clip, out=tmp_path / "compiled", compile=True, **kw).dir).read_tuned()
    assert plain.keys() == compiled.keys()
    for k in plain:
        torch.testing.assert_close(compiled[k], plain[k], atol=1e-4, rtol=1e-4)

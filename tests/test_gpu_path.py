"""The paths a GPU run takes, exercised on CPU: benchmarks/gpu_check.py (quick mode, and its time boxes), data-loader
workers under fork and spawn, pinned memory only for a device, the feature cache and the distillation terms under
bf16 autocast, and no tensor made off the data's device in a training step or a prediction."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clipfit.backbone import Backbone
from clipfit.config import TrainConfig
from clipfit.data.images import check_images
from clipfit.data.transforms import ImageDataset, eval_transform, seed_worker, train_transform
from clipfit.engine import loop
from clipfit.engine.run import RunSpec, prepare_task
from clipfit.method import METHODS, build_method

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
METHOD_NAMES = [n for n in METHODS.list() if not METHODS.get(n).preset]


def _config(name: str):
    """A method's config that fits the tiny model (16 text positions: 4 context vectors)."""
    cfg = METHODS.get(name).config()
    if hasattr(cfg, "n_ctx"):
        cfg.n_ctx = 4
    return cfg


def _gpu_check():
    sys.path.insert(0, str(BENCH))
    import gpu_check

    return gpu_check


# -- benchmarks/gpu_check.py ------------------------------------------------------------------------------------------

def test_gpu_check_quick_runs_every_section_on_cpu_and_writes_both_files(tmp_path):
    """The script the first lent GPU runs, on the tiny model: every section runs (ddp says why it cannot), every
    check passes, and both files hold what the README's table needs. Its sections get at most 50 s (--budget): on a
    busy machine a late section is skipped and says so, never fails this test by its time."""
    gc = _gpu_check()
    r = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--quick", "--device", "cpu", "--threads", "1",
                        "--budget", "50", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    secs = data["sections"]
    assert list(secs) == list(gc.SECTIONS)
    assert {e["status"] for e in secs.values()} <= {"ok", "skipped", "timeout"}, secs
    assert secs["setup"]["status"] == "ok"
    assert secs["ddp"]["status"] == "skipped" and "2 CUDA GPUs" in secs["ddp"]["why"]
    assert all(c["passed"] for e in secs.values() for c in e.get("checks", []))
    assert data["environment"]["peak_bf16_tflops"] == "unknown" and data["plan"]["model"] == "tiny"
    done = {k for k, e in secs.items() if e["status"] == "ok"}
    res = {k: secs[k]["result"] for k in done}
    if "correctness" in done:
        assert set(res["correctness"]) == set(gc.CHECKED)
        assert {"kd", "ce"} <= set(res["correctness"]["clipfit"]["terms"])  # the distillation term ran in bf16
        assert len(secs["correctness"]["checks"]) == 4 * len(gc.CHECKED)
    if "speed" in done:
        assert {"coop@10", "clipfit@10", "coop@100", "clipfit@100"} == set(res["speed"])
        assert {"step_ratio", "run_ratio"} <= set(res["speed"]["clipfit@10"]) and "run" in res["speed"]["coop@100"]
    if "compile" in done:
        assert res["compile"]["clipfit"]["backend"] == "aot_eager"
    if "image_step" in done:
        assert res["image_step"]["frozen_encode"]["gflop"] > 0
    if "loader" in done:
        assert res["loader"]["workers2_decoded_once_images_per_s"] > 0 and res["loader"]["workers0_pinned"] is False
    if "memory" in done:
        assert set(gc.CHECKED) <= set(res["memory"])
    if "text_chunk" in done:
        assert set(res["text_chunk"]) == {"text_chunk=0", "text_chunk=100"}
    md = (tmp_path / "gpu_check.md").read_text()
    assert "| section | status |" in md and "| check | passed |" in md


def test_a_failing_or_overrunning_section_keeps_the_others_figures(tmp_path, monkeypatch):
    gc = _gpu_check()

    def setup(ctx, rec):
        ctx.pristine = object()

    def boom(ctx, rec):
        rec["first"] = 1
        raise ValueError("broken on purpose")

    def slow(ctx, rec):
        rec["a"] = 1
        time.sleep(30)
        rec["b"] = 2

    def fine(ctx, rec):
        rec["x"] = 3
        rec.check("x is 3", rec["x"] == 3, 3, "equal")

    monkeypatch.setattr(gc, "SECTIONS", {"setup": setup, "boom": boom, "slow": slow, "fine": fine})
    monkeypatch.setattr(gc, "planned", lambda name, ctx: ["a", "b"] if name == "slow" else [])
    plan = gc.Plan(boxes={"setup": 5, "boom": 5, "slow": 0.5, "fine": 5})
    ctx = gc.Ctx(plan, torch.device("cpu"), tmp_path)
    header = {"command": "test", "started": "now", "environment": {"device": "cpu", "torch": "", "transformers": "",
                                                                   "cuda": None}}
    report = gc.Report(tmp_path, header, None)
    assert gc.run(ctx, list(gc.SECTIONS), report, budget=60) is False  # a section failed
    secs = json.loads((tmp_path / "gpu_check.json").read_text())["sections"]
    assert secs["boom"]["status"] == "failed" and "broken on purpose" in secs["boom"]["error"]
    assert secs["boom"]["result"] == {"first": 1}  # what it did before the error stays
    assert secs["slow"]["status"] == "timeout" and secs["slow"]["result"] == {"a": 1} and secs["slow"]["skipped"] == ["b"]
    assert secs["slow"]["seconds"] < 10
    assert secs["fine"]["status"] == "ok" and secs["fine"]["checks"][0]["passed"]
    assert "| slow | timeout |" in (tmp_path / "gpu_check.md").read_text()
    # no time left: a section is skipped and says why
    report = gc.Report(tmp_path, header, None)
    assert gc.run(gc.Ctx(plan, torch.device("cpu"), tmp_path), ["setup", "fine"], report, budget=0)
    secs = report.data["sections"]
    assert secs["setup"]["status"] == "skipped" and "budget" in secs["setup"]["why"]
    assert secs["fine"]["status"] == "skipped" and "setup" in secs["fine"]["why"]


def test_the_bf16_peak_is_looked_up_by_device_name():
    gc = _gpu_check()
    assert gc.peak_bf16("NVIDIA H200") == gc.peak_bf16("NVIDIA H100 80GB HBM3") == 989.0
    assert gc.peak_bf16("NVIDIA H100 PCIe") == 756.0 and gc.peak_bf16("NVIDIA H200 NVL") == 835.0
    assert gc.peak_bf16("NVIDIA A100-SXM4-80GB") == 312.0 and gc.peak_bf16("NVIDIA A10") == 125.0
    assert gc.peak_bf16("NVIDIA L40S") == 362.0 and gc.peak_bf16("NVIDIA L4") == 121.0
    assert gc.peak_bf16("Tesla V100-SXM2-16GB") is None


# -- data loading with workers ------------------------------------------------------------------------------------------

def _task(tiny_folder: str, shots: int = 4):
    return prepare_task(RunSpec(dataset=f"imagefolder:{tiny_folder}", shots=shots, seed=1))


def _batches(loader) -> list[torch.Tensor]:
    return [x for x, _ in loader]


def test_data_loader_workers_give_the_batches_of_one_process(tiny_clip, tiny_folder):
    """Evaluation batches with 2 workers equal those of the main process; training batches (augmented in the
    workers, seeded from the loader's generator) repeat with the seed and differ from one epoch to the next."""
    task = check_images(_task(tiny_folder))  # what `clipfit train` gives the loaders: decoded training images
    m = build_method("zeroshot", Backbone.from_pretrained(tiny_clip), task.classnames, task.template)
    plain = _batches(loop.eval_loader(task.test, task, m, 8, num_workers=0))
    for a, b in zip(plain, _batches(loop.eval_loader(task.test, task, m, 8, num_workers=2)), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    cfg = TrainConfig(batch_size=4, num_workers=2, crop_scale=0.5)
    runs = [[_batches(src.batches()) for _ in range(2)]
            for src in (loop.ImageSource(m, task, cfg, 3, torch.device("cpu")) for _ in range(2))]
    for a, b in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1], strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.equal(torch.cat(runs[0][0]), torch.cat(runs[0][1]))


def test_spawned_workers_augment_as_forked_ones(tiny_clip, tiny_folder):
    """Workers started by spawn (macOS; Python 3.14's Linux default is forkserver) receive the dataset pickled and
    import clipfit afresh: the same training batches as forked workers."""
    task = check_images(_task(tiny_folder, shots=2))
    m = build_method("zeroshot", Backbone.from_pretrained(tiny_clip), task.classnames, task.template)
    cfg = TrainConfig(batch_size=3, num_workers=2, crop_scale=0.5)
    got = {}
    for how in ("fork", "spawn"):
        src = loop.ImageSource(m, task, cfg, 3, torch.device("cpu"))
        src.loader.multiprocessing_context = how
        got[how] = _batches(src.batches())
    for a, b in zip(got["fork"], got["spawn"], strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_cached_views_made_in_workers_differ_from_each_other_and_repeat_with_the_seed(tiny_clip, tiny_folder):
    task = check_images(_task(tiny_folder))
    m = build_method("coop", Backbone.from_pretrained(tiny_clip), task.classnames, task.template, _config("coop"))
    cfg = TrainConfig(num_workers=2, crop_scale=0.3, eval_batch_size=5)
    feats = [loop.extract_features(m, task, task.train, torch.device("cpu"), cfg, views=2, seed=s)[0] for s in (1, 1, 2)]
    n = len(task.train)
    assert not torch.allclose(feats[0][:n], feats[0][n:])  # view 2 is not view 1 again
    torch.testing.assert_close(feats[0], feats[1], atol=0, rtol=0)  # the same seed, the same views
    assert not torch.allclose(feats[0], feats[2])


def test_everything_a_data_loader_worker_receives_pickles(tiny_clip, tiny_folder, tmp_path):
    """Workers started by spawn or forkserver (macOS, Python 3.14's Linux default) get the dataset pickled: every
    kind of reader, both transforms and the worker seeding must survive it."""
    import numpy as np
    from datasets import Dataset
    from PIL import Image

    from clipfit.data.catalogue import load_task
    from clipfit.data.images import ArrayReader
    from clipfit.data.types import Item

    spec = Backbone.from_pretrained(tiny_clip).image_spec
    folder = _task(tiny_folder)
    images = [Image.fromarray(np.full((20, 24, 3), 40 * i, np.uint8)) for i in range(4)]
    Dataset.from_dict({"image": images, "label": [0, 1, 0, 1]}).save_to_disk(str(tmp_path / "hfds"))
    hf = load_task(f"hf:{tmp_path / 'hfds'}")
    arrays = ArrayReader({"train": np.zeros((2, 8, 8, 3), np.uint8)})
    readers = {"files": (folder.reader, folder.train[0].key), "decoded": (check_images(folder).reader, folder.train[0].key),
               "hf": (hf.reader, (hf.train or hf.test)[0].key), "arrays": (arrays, "train/1")}
    for name, (reader, key) in readers.items():
        for tf in (eval_transform(spec), train_transform(spec, seed=5)):
            ds = ImageDataset([Item(key, 0, "x")], reader, tf, cache=True)
            copy = pickle.loads(pickle.dumps(ds))
            torch.testing.assert_close(copy[0][0], ds[0][0], atol=0, rtol=0, msg=name)
    assert pickle.loads(pickle.dumps(seed_worker)) is seed_worker


def test_memory_is_pinned_only_for_a_device(tiny_clip, tiny_folder):
    task = _task(tiny_folder)
    m = build_method("zeroshot", Backbone.from_pretrained(tiny_clip), task.classnames, task.template)
    cfg = TrainConfig(batch_size=4, num_workers=0)
    assert not loop.ImageSource(m, task, cfg, 1, torch.device("cpu")).loader.pin_memory
    assert not loop.eval_loader(task.test, task, m, 8).pin_memory
    # built for a GPU (nothing touches CUDA until the first batch): page-locked batches, copied asynchronously
    assert loop.ImageSource(m, task, cfg, 1, torch.device("cuda")).loader.pin_memory
    assert loop.pin(torch.device("cuda")) and not loop.pin(torch.device("cpu"))


# -- bf16 autocast on CPU -------------------------------------------------------------------------------------------------

def test_the_feature_cache_under_bf16_autocast_holds_fp32_features_close_to_fp32_ones(tiny_clip, tiny_folder):
    task = check_images(_task(tiny_folder))
    m = build_method("coop", Backbone.from_pretrained(tiny_clip), task.classnames, task.template, _config("coop"))
    got = {p: loop.extract_features(m, task, task.train, torch.device("cpu"), TrainConfig(precision=p), views=0)
           for p in ("fp32", "bf16")}
    assert got["bf16"][0].dtype == torch.float32 and torch.equal(got["bf16"][1], got["fp32"][1])
    torch.testing.assert_close(got["bf16"][0], got["fp32"][0], atol=3e-2, rtol=0)
    assert not torch.equal(got["bf16"][0], got["fp32"][0])  # the forward did run in bf16
    # a whole CoOp fit on those features in bf16: finite losses close to fp32's, fp32 weights
    res = {}
    for p in ("fp32", "bf16"):
        m.reset_parameters()
        cfg = TrainConfig(precision=p, epochs=3, batch_size=4, lr=0.5, warmup_epochs=0, feature_views=0, select="last")
        res[p] = loop.fit(m, task, cfg, 1, torch.device("cpu"), log=lambda s: None, progress=False)
        assert all(t.dtype == torch.float32 for t in m.tuned_state().values())
    losses = {p: [h["loss"] for h in r.history] for p, r in res.items()}
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=0.05)


DISTILLED = {"clipfit": {"kd"}, "kgcoop": {"kg"}, "prograd": {"kd"}, "promptsrc": {"l1_text", "l1_image", "kl"}}


@pytest.mark.parametrize("name", sorted(DISTILLED))
def test_distillation_terms_survive_bf16_autocast(tiny_clip, name):
    """A known flaw of reference code: a mixed-precision branch that drops the distillation term. Here each term is
    computed under bf16 autocast, close to its fp32 value, and its gradient is the fp32 one."""
    bb = Backbone.from_pretrained(tiny_clip)
    m = build_method(name, bb, ["red", "green", "blue"], "a photo of a {}.", _config(name))
    torch.manual_seed(0)
    m.reset_parameters()
    m.on_train_start()  # the zero-shot teachers, in fp32 (as `fit` computes them)
    m.train()
    with torch.no_grad():  # move away from the teacher, so that every term is large
        for p in m.trainable().values():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.randn(6, 3, bb.image_spec.size, bb.image_spec.size)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    out = {}
    for prec in ("fp32", "bf16"):
        torch.manual_seed(1)
        m.zero_grad(set_to_none=True)
        step = loop.forward_step(m, m.image_features, x, y, None, torch.device("cpu"), prec)
        step.loss, parts = m.loss(step)
        m.backward(step)
        out[prec] = parts, torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                                      for p in m.trainable().values()])
    (p32, g32), (p16, g16) = out["fp32"], out["bf16"]
    assert DISTILLED[name] <= set(p16) and set(p16) == set(p32)
    for k in DISTILLED[name]:
        assert p16[k] > 1e-4 and p16[k] == pytest.approx(p32[k], rel=0.1, abs=1e-3), k
    assert float(torch.nn.functional.cosine_similarity(g16, g32, dim=0)) > 0.98


# -- the device audit -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", METHOD_NAMES)
def test_a_training_step_and_a_prediction_make_no_tensor_off_the_data_device(tiny_clip, name):
    """Run with torch's default device set to 'meta', a tensor created without `device=` in a step or a prediction
    would be a meta tensor, and mixing it with the model's and the data's (CPU) tensors fails: on a GPU it would be a
    CPU tensor, an error or a copy to the device at every step."""
    bb = Backbone.from_pretrained(tiny_clip)
    m = build_method(name, bb, ["red", "green", "blue"], "a photo of a {}.", _config(name))
    views = max(1, m.feature_views or 1)
    m.size_for(6)
    torch.manual_seed(0)
    m.reset_parameters()
    x = torch.randn(6, 3, bb.image_spec.size, bb.image_spec.size)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    feats = None
    if m.closed_form or m.trains_on_features or m.image_tower_frozen:
        with torch.no_grad():
            feats = m.frozen_image_features(x).repeat(views, 1)
        m.on_features(feats, y.repeat(views))
    m.on_train_start()
    m.train()
    with torch.device("meta"):
        if m.closed_form:
            m.fit_features(feats, y.repeat(views), feats[:6], y)
        elif m.trainable():
            inputs, features = (feats[:6], m.adapt_image_features) if feats is not None else (x, m.image_features)
            step = loop.forward_step(m, features, inputs, y, None, torch.device("cpu"), "fp32")
            step.loss, _ = m.loss(step)
            m.backward(step)
            m.on_epoch_end(1, 2)
        m.eval()
        with torch.no_grad():
            logits = m.logits(m.image_features(x), m.text_features())
    assert logits.device.type == "cpu" and logits.shape == (6, 3)

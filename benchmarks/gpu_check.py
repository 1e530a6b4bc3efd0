"""One command for the first lent GPU: every correctness check and every speed and memory figure of clipfit's GPU
path, in one process, each section in its own time box, written to OUT/gpu_check.json and OUT/gpu_check.md after
every section (a section that fails or runs out of time records why and what it skipped; the others' figures stay).

    python benchmarks/gpu_check.py OUT                           # one CUDA GPU: under 8 minutes on an H200
    python benchmarks/gpu_check.py --quick --device cpu OUT      # every section on a tiny model, under a minute
    python benchmarks/gpu_check.py OUT --sections speed,memory   # some sections again (their entries replaced)

The model is a ViT-B/16-sized CLIP (transformers CLIPConfig with ViT-B/16's sizes, random weights: no download;
--quick: a tiny random CLIP). Sections and their time boxes in seconds, full run on one GPU [--quick]:

  setup        40 [30]  the random model saved to OUT/work; JPEGs (256 px) for 10 and 100 classes x 16 shots and
                        1,000 classes x 1 shot
  correctness  60 [60]  20 steps [5] of CLIPFit, CoOp, CLIP-LoRA and MaPLe in fp32 and in bf16 autocast on the same
                        batches: no non-finite loss or weight, the same loss terms, bf16 losses within
                        0.05 + 0.02 |loss| of fp32 at every step, fp32 master weights and gradients
  compile      100 [60] CLIPFit with compile=true (inductor; --quick on CPU: the aot_eager backend, since inductor's
                        C++ build takes ~45 s on a small CPU) against eager: losses within the precision's tolerance,
                        first-step (compilation) time, step time on and off
  sdpa         15 [30]  SDPA attention against eager attention: image and padded-prompt text features, fp32 and bf16
  ddp          60 [-]   2-process data-parallel training (torchrun; clipfit's processes use accelerate) equals one
                        process (fp32, TF32 off); 2+ GPUs only
  speed        120 [60] clipfit against the reference-style loop of benchmarks/bench_train.py, CoOp and CLIPFit, per
                        step (median of 10 [2] after a warm-up) at 10, 100, 1,000 [10, 100] classes, and per 16-shot
                        run (2 epochs [1], setup included, per epoch) at 10 and 100 [10] classes (an epoch at 1,000
                        classes is 500 steps: over the box)
  image_step   20 [30]  CLIPFit's training step at batch 32 and the frozen encoder at batch 256: images/s,
                        FLOPs (torch.utils.flop_counter) and their share of the device's dense bf16 peak
  loader       35 [30]  training batches per second with data-loader workers 0/4/8 [0/2]: images decoded once
                        (clipfit) and decoded from the JPEG files every time
  memory       45 [60]  peak memory of a one-batch run at batch 32 (10 classes x 4 shots) of every method [the four
                        above]; CUDA: allocated by torch, CPU: the process's peak RSS above the start
  text_chunk   15 [30]  one CoOp step on 1,000 classes with text_chunk 0 and 100: peak memory and time

The boxes of one GPU add up to 450 s (ddp: 60 s more where 2 GPUs exist); --budget (default 450 s) also caps the
whole: a section that would start after it is skipped and says so. Exit status 0 when every check that ran passed
and no section failed, else 1.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from bench_text_chunk import _status_kb, classnames, coop_step_peak, rss_peak_since_reset  # noqa: E402
from bench_train import Clipfit, Reference, per_epoch, per_step, spec_for, vitb16_random, write_data  # noqa: E402

from clipfit.backbone import Backbone, make_random_clip  # noqa: E402
from clipfit.data.images import check_images  # noqa: E402
from clipfit.data.transforms import cache_side  # noqa: E402
from clipfit.engine.loop import (  # noqa: E402
    ImageSource,
    autocast,
    compile_towers,
    fit,
    forward_step,
    make_optimizer,
    pick_device,
    seed_everything,
)
from clipfit.engine.run import prepare_task, resolve_configs  # noqa: E402
from clipfit.io import atomic_write_bytes  # noqa: E402
from clipfit.method import METHODS, build_method  # noqa: E402
from clipfit.recipes import Context  # noqa: E402
from clipfit.threads import set_threads  # noqa: E402

CHECKED = ("clipfit", "coop", "clip_lora", "maple")
# Dense (without sparsity) bf16 tensor-core peak in TFLOP/s, from NVIDIA's data sheets; the first name contained in
# torch.cuda.get_device_name() wins (so "A100" before "A10", "L40S" before "L40" before "L4").
PEAK_BF16_TFLOPS = (("GH200", 989.0), ("H200 NVL", 835.0), ("H200", 989.0), ("H100 NVL", 835.0),
                    ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("A30", 165.0), ("A10", 125.0),
                    ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0))
BF16_ATOL, BF16_RTOL = 0.05, 0.02  # bf16 autocast vs fp32, per step: |l_bf16 - l_fp32| <= atol + rtol |l_fp32|
FP32_ATOL, FP32_RTOL = 1e-5, 1e-4  # two fp32 computations of the same thing (compile vs eager, SDPA vs eager)


def peak_bf16(device_name: str) -> float | None:
    """The device's dense bf16 peak in TFLOP/s, None when the table does not know it."""
    return next((tf for key, tf in PEAK_BF16_TFLOPS if key in device_name), None)


@dataclass
class Plan:
    """Sizes of a run: the full one for a GPU, or --quick (tiny model, fewer steps, every section still runs)."""

    model: str = "vitb16"
    classes: tuple[int, ...] = (10, 100, 1000)
    run_classes: tuple[int, ...] = (10, 100)
    shots: int = 16
    run_epochs: int = 2
    steps: int = 10
    check_steps: int = 20
    compile_steps: int = 10
    batch: int = 32
    encode_batch: int = 256
    workers: tuple[int, ...] = (0, 4, 8)
    px: int = 256
    memory_methods: tuple[str, ...] | None = None  # None: every method
    chunk_classes: int = 1000
    boxes: dict[str, float] = field(default_factory=lambda: {
        "setup": 40, "correctness": 60, "compile": 100, "sdpa": 15, "ddp": 60, "speed": 120, "image_step": 20,
        "loader": 35, "memory": 45, "text_chunk": 15})


QUICK = Plan(model="tiny", classes=(10, 100), run_classes=(10,), shots=2, run_epochs=1, steps=2, check_steps=5,
             compile_steps=3, batch=8, encode_batch=32, workers=(0, 2), px=64, memory_methods=CHECKED,
             boxes={"setup": 30, "correctness": 60, "compile": 60, "sdpa": 30, "ddp": 30, "speed": 60,
                    "image_step": 30, "loader": 30, "memory": 60, "text_chunk": 30})


@dataclass
class Ctx:
    """What every section gets: the plan, the device, the saved model and data, a pristine backbone to copy."""

    plan: Plan
    dev: torch.device
    out: Path
    model: str = ""
    pristine: Backbone | None = None
    names: list[str] = field(default_factory=list)
    data: dict[int, str] = field(default_factory=dict)
    compile_backend: str = "inductor"

    def backbone(self) -> Backbone:
        """A fresh copy of the model on the device (methods unfreeze and train the backbone in place)."""
        return copy.deepcopy(self.pristine)

    def sync(self) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)


class Record(dict):
    """A section's results, filled as they come, so a time-out or an error keeps what was done; `planned` names
    what the section means to do (the rest is reported as skipped), `checks` its pass/fail checks."""

    def __init__(self, planned: list[str]):
        super().__init__()
        self.planned = planned
        self.checks: list[dict] = []

    def check(self, name: str, passed: bool, measured, tolerance: str) -> None:
        if isinstance(measured, float):
            measured = float(f"{measured:.3g}")
        self.checks.append({"check": name, "passed": bool(passed), "measured": measured, "tolerance": tolerance})


# -- sections ---------------------------------------------------------------------------------------------------
def sec_setup(ctx: Ctx, rec: Record) -> None:
    from transformers import AutoTokenizer

    work = ctx.out / "work"
    t = time.perf_counter()
    if ctx.plan.model == "vitb16":
        ctx.model = vitb16_random(work / "vitb16-random")
    else:  # 77 positions, as CLIP: CoOp's 16 context vectors fit, and the reference pads to the same context
        ctx.model = str(work / "tiny") if (work / "tiny" / "config.json").exists() else make_random_clip(
            work / "tiny", max_length=77)
    rec["model"] = {"path": ctx.model, "seconds": round(time.perf_counter() - t, 1)}
    ctx.names = classnames(AutoTokenizer.from_pretrained(ctx.model), max(*ctx.plan.classes, ctx.plan.chunk_classes))
    for c in ctx.plan.classes:  # before CUDA starts: many classes are written by forked processes
        shots = ctx.plan.shots if c in ctx.plan.run_classes else 1
        t = time.perf_counter()
        ctx.data[c] = write_data(work / f"data{c}x{shots}_{ctx.plan.px}", c, shots, ctx.plan.px, ctx.names[:c])
        rec[f"data{c}"] = {"classes": c, "shots": shots, "seconds": round(time.perf_counter() - t, 1)}
    t = time.perf_counter()
    ctx.pristine = Backbone.from_pretrained(ctx.model, device=ctx.dev)
    rec["model"].update(parameters=sum(p.numel() for p in ctx.pristine.model.parameters()),
                        load_seconds=round(time.perf_counter() - t, 1))


def run_steps(ctx: Ctx, method: str, precision: str, steps: int, compile_options: dict | None = None) -> dict:
    """`steps` training steps of `method` on 10 classes and fixed random batches (the engine's step: autocast,
    the method's loss and backward, its recipe's optimiser at the peak learning rate): losses, loss terms, times."""
    mcfg, tcfg = METHODS.get(method).configs(Context("fewshot", "imagenet", 16), {})
    m = build_method(method, ctx.backbone(), ctx.names[:10], "a photo of a {}.", mcfg).to(ctx.dev)
    seed_everything(0)
    m.reset_parameters()
    m.on_train_start()
    m.train()
    if compile_options is not None:
        compile_towers(m, **compile_options)
    opt = make_optimizer(list(m.trainable().values()), tcfg)
    gen, size, b = torch.Generator().manual_seed(0), m.backbone.image_spec.size, ctx.plan.batch
    out = {"loss": [], "terms": set(), "seconds": []}
    for _ in range(steps):
        x = torch.randn(b, 3, size, size, generator=gen).to(ctx.dev)
        y = torch.randint(0, 10, (b,), generator=gen).to(ctx.dev)
        ctx.sync()
        t = time.perf_counter()
        step = forward_step(m, m.image_features, x, y, None, ctx.dev, precision)
        step.loss, parts = m.loss(step)
        opt.zero_grad(set_to_none=True)
        m.backward(step)
        opt.step()
        out["loss"].append(float(step.loss.detach()))
        ctx.sync()
        out["seconds"].append(time.perf_counter() - t)
        out["terms"] |= set(parts)
    params = list(m.trainable().values())
    out["finite_weights"] = all(bool(torch.isfinite(p).all()) for p in params)
    out["fp32_master"] = all(p.dtype == torch.float32 and (p.grad is None or p.grad.dtype == torch.float32)
                             for p in params)
    return out


def worst(a: list[float], b: list[float], atol: float, rtol: float) -> tuple[float, bool]:
    """(largest |a - b| over the steps, whether every step is within atol + rtol |b|)."""
    diffs = [abs(x - y) for x, y in zip(a, b)]
    return round(max(diffs), 6), all(d <= atol + rtol * abs(y) for d, y in zip(diffs, b))


def tolerance(precision: str) -> tuple[float, float]:
    return (BF16_ATOL, BF16_RTOL) if precision == "bf16" else (FP32_ATOL, FP32_RTOL)


def sec_correctness(ctx: Ctx, rec: Record) -> None:
    # fp32 means fp32: no TF32 in the patch embedding's convolution (matmuls are full fp32 by torch's default)
    exact = torch.backends.cudnn.flags(enabled=True, allow_tf32=False) if ctx.dev.type == "cuda" else \
        contextlib.nullcontext()
    for method in CHECKED:
        with exact:
            fp32 = run_steps(ctx, method, "fp32", ctx.plan.check_steps)
        bf16 = run_steps(ctx, method, "bf16", ctx.plan.check_steps)
        diff, within = worst(bf16["loss"], fp32["loss"], BF16_ATOL, BF16_RTOL)
        finite = all(map(math.isfinite, fp32["loss"] + bf16["loss"])) and fp32["finite_weights"] and bf16["finite_weights"]
        rec[method] = {"loss_fp32": [round(v, 5) for v in fp32["loss"]], "loss_bf16": [round(v, 5) for v in bf16["loss"]],
                       "max_abs_diff": diff, "terms": sorted(bf16["terms"])}
        rec.check(f"{method}: finite losses and weights, fp32 and bf16", finite, None, "all finite")
        rec.check(f"{method}: bf16 losses follow fp32", within, diff, f"{BF16_ATOL} + {BF16_RTOL} |loss| per step")
        rec.check(f"{method}: the same loss terms in bf16", fp32["terms"] == bf16["terms"], sorted(bf16["terms"]),
                  "equal")
        rec.check(f"{method}: fp32 master weights and gradients under bf16", bf16["fp32_master"], None, "float32")


def default_precision(ctx: Ctx) -> str:
    return "bf16" if ctx.dev.type == "cuda" else "fp32"  # what precision=auto runs


def sec_compile(ctx: Ctx, rec: Record) -> None:
    prec, n = default_precision(ctx), ctx.plan.compile_steps
    eager = run_steps(ctx, "clipfit", prec, n)
    row = rec["clipfit"] = {"precision": prec, "backend": ctx.compile_backend, "steps": n,  # kept if compiling overruns
                            "first_step_s": {"eager": round(eager["seconds"][0], 2)},
                            "step_ms": {"eager": round(1e3 * statistics.median(eager["seconds"][1:]), 2)}}
    torch._dynamo.reset()
    compiled = run_steps(ctx, "clipfit", prec, n, {"backend": ctx.compile_backend})
    diff, within = worst(compiled["loss"], eager["loss"], *tolerance(prec))
    row["max_abs_loss_diff"] = diff
    row["first_step_s"]["compiled"] = round(compiled["seconds"][0], 2)  # the compilation
    row["step_ms"]["compiled"] = round(1e3 * statistics.median(compiled["seconds"][1:]), 2)
    row["speedup"] = round(row["step_ms"]["eager"] / row["step_ms"]["compiled"], 2)
    rec.check(f"compile ({ctx.compile_backend}) gives eager's losses ({prec})", within, diff,
              "{} + {} |loss| per step".format(*tolerance(prec)))


def sec_sdpa(ctx: Ctx, rec: Record) -> None:
    from transformers import CLIPModel

    sdpa = ctx.backbone()
    eager = Backbone(CLIPModel.from_pretrained(ctx.model, attn_implementation="eager").to(ctx.dev).eval(),
                     sdpa.tokenizer, sdpa.processor, source=ctx.model)
    torch.manual_seed(0)
    size = sdpa.image_spec.size
    images = torch.randn(8, 3, size, size).to(ctx.dev)
    names = [ctx.names[i] for i in (0, 9, 99, 999) if i < len(ctx.names)]  # 1 to 4 words: padding matters
    mcfg = METHODS.get("coop").config()
    for prec in ("fp32", "bf16"):
        feats = []
        for bb in (sdpa, eager):
            torch.manual_seed(1)
            m = build_method("coop", bb, names, "a photo of a {}.", mcfg).to(ctx.dev)
            with torch.no_grad(), autocast(ctx.dev, prec):
                feats.append((bb.encode_image(images).float(), m.text_features().float()))
        atol, rtol = (2e-2, 2e-2) if prec == "bf16" else (1e-4, 1e-4)
        for i, what in enumerate(("image", "text")):
            d = float((feats[0][i] - feats[1][i]).abs().max())
            rec[f"{what}_{prec}_max_abs_diff"] = round(d, 7)
            rec.check(f"SDPA equals eager attention: {what} features, {prec}", torch.allclose(
                feats[0][i], feats[1][i], atol=atol, rtol=rtol), d, f"atol {atol}, rtol {rtol}")
    if ctx.dev.type == "cuda":
        rec["backends"] = {"flash": torch.backends.cuda.flash_sdp_enabled(),
                           "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                           "cudnn": torch.backends.cuda.cudnn_sdp_enabled()}


def ddp_skip(ctx: Ctx) -> str | None:
    if ctx.dev.type != "cuda" or torch.cuda.device_count() < 2:
        return (f"needs 2 CUDA GPUs ({torch.cuda.device_count() if torch.cuda.is_available() else 0} here); the "
                "2-process run on CPU (gloo) is tests/test_scale.py's")
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        return "accelerate is not installed (pip install 'clipfit[multi]')"
    return None


def sec_ddp(ctx: Ctx, rec: Record) -> None:
    from clipfit.engine.rundir import RunDir

    data = ctx.data[ctx.plan.run_classes[0]]
    common = ["train", "--model", ctx.model, "--dataset", f"imagefolder:{data}", "--method", "clipfit", "--shots",
              str(min(4, ctx.plan.shots)), "--seed", "3", "--quiet", "--no-test", "--overwrite", "--set", "epochs=2", "--set", "batch_size=8",
              "--set", "precision=fp32", "--set", "warmup_epochs=0"]
    env = {**os.environ, "NVIDIA_TF32_OVERRIDE": "0", "PYTHONPATH": str(HERE.parent / "src"),
           **({} if ctx.dev.type == "cuda" else {"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"})}
    one = "cuda:0" if ctx.dev.type == "cuda" else "cpu"
    runs = {"one": [sys.executable, "-m", "clipfit.cli", *common, "--device", one, "--out", str(ctx.out / "work" / "ddp1")],
            "two": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                    "clipfit.cli", *common, "--out", str(ctx.out / "work" / "ddp2")]}  # torchrun
    tuned = {}
    for k, cmd in runs.items():
        t = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"{k} process(es) failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
        rec[f"{k}_process_s"] = round(time.perf_counter() - t, 1)
        tuned[k] = RunDir(cmd[cmd.index("--out") + 1]).read_tuned()
    d = max(float((tuned["two"][k] - tuned["one"][k]).abs().max()) for k in tuned["one"])
    ok = tuned["one"].keys() == tuned["two"].keys() and all(
        torch.allclose(tuned["two"][k], tuned["one"][k], atol=FP32_ATOL, rtol=FP32_RTOL) for k in tuned["one"])
    rec["max_abs_weight_diff"] = d
    rec.check("2 processes train one process's weights (fp32, no TF32)", ok, d, f"atol {FP32_ATOL}, rtol {FP32_RTOL}")


def sec_speed(ctx: Ctx, rec: Record) -> None:
    p = ctx.plan
    for method in ("coop", "clipfit"):
        for c in p.classes:
            shots = p.shots if c in p.run_classes else 1
            ns = argparse.Namespace(epochs=p.run_epochs, batch=p.batch, shots=shots, device=str(ctx.dev), repeats=1)
            spec = spec_for(ns, ctx.model, ctx.data[c], method)
            mcfg, tcfg = resolve_configs(spec)
            task = prepare_task(spec)
            decoded = check_images(task, keep_short=cache_side(ctx.pristine.image_spec))  # as `clipfit train` does
            ref, ours = per_step(Reference(ctx.backbone(), task, mcfg, tcfg, ctx.dev, method=method),
                                 Clipfit(ctx.backbone(), decoded, mcfg, tcfg, ctx.dev, method=method), p.steps, ctx.dev)
            row = {"step_ms_reference": round(ref * 1e3, 2), "step_ms_clipfit": round(ours * 1e3, 2),
                   "step_ratio": round(ref / ours, 2)}
            rec[f"{method}@{c}"] = row
            if c in p.run_classes:
                e = per_epoch(ns, ctx.model, ctx.data[c], ctx.backbone(), ctx.dev, method)
                row.update(run_epoch_s_reference=round(e["ref"], 3), run_epoch_s_clipfit=round(e["ours"], 3),
                           run_ratio=round(e["ref"] / e["ours"], 2), run_images=e["images"], run_epochs=p.run_epochs)
                if ctx.dev.type == "cuda":
                    row.update(run_peak_mib_reference=round(e["ref_mem"] / 2**20), run_peak_mib_clipfit=round(e["ours_mem"] / 2**20))
            else:
                row["run"] = f"not run: a {p.shots}-shot epoch at {c} classes is {c * p.shots // p.batch} steps (over the box)"


def flops_of(fn: Callable[[], None]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def median_seconds(ctx: Ctx, fn: Callable[[], None], n: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(n):
        ctx.sync()
        t = time.perf_counter()
        fn()
        ctx.sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def sec_image_step(ctx: Ctx, rec: Record) -> None:
    prec = default_precision(ctx)
    m = build_method("clipfit", ctx.backbone(), ctx.names[:10], "a photo of a {}.").to(ctx.dev)
    m.on_train_start()
    m.train()
    size = m.backbone.image_spec.size
    x = torch.randn(ctx.plan.batch, 3, size, size).to(ctx.dev)
    y = torch.randint(0, 10, (ctx.plan.batch,)).to(ctx.dev)
    big = torch.randn(ctx.plan.encode_batch, 3, size, size).to(ctx.dev)

    def train_step():
        step = forward_step(m, m.image_features, x, y, None, ctx.dev, prec)
        step.loss, _ = m.loss(step)
        m.zero_grad(set_to_none=True)
        m.backward(step)

    def encode():
        with torch.no_grad(), autocast(ctx.dev, prec):
            m.frozen_image_features(big)

    name = torch.cuda.get_device_name(ctx.dev) if ctx.dev.type == "cuda" else platform.processor() or "cpu"
    peak = peak_bf16(name) if ctx.dev.type == "cuda" else None
    rec["device"], rec["peak_bf16_tflops"] = name, peak if peak is not None else "unknown"
    for key, fn, n_img in (("clipfit_train_step", train_step, ctx.plan.batch), ("frozen_encode", encode, ctx.plan.encode_batch)):
        flops = flops_of(fn)
        sec = median_seconds(ctx, fn, ctx.plan.steps)
        tflops = flops / sec / 1e12
        rec[key] = {"batch": n_img, "precision": prec, "ms": round(sec * 1e3, 2), "images_per_s": round(n_img / sec, 1),
                    "gflop": float(f"{flops / 1e9:.4g}"), "tflops": round(tflops, 3),
                    "share_of_bf16_peak": round(tflops / peak, 3) if peak else "unknown"}


def sec_loader(ctx: Ctx, rec: Record) -> None:
    p = ctx.plan
    c = p.run_classes[-1]
    ns = argparse.Namespace(epochs=1, batch=p.batch, shots=p.shots, device=str(ctx.dev))
    spec = spec_for(ns, ctx.model, ctx.data[c], "clipfit")
    _, tcfg = resolve_configs(spec)
    task = prepare_task(spec)
    m = build_method("zeroshot", ctx.backbone(), task.classnames, task.template)  # the loader needs only a backbone
    t = time.perf_counter()
    decoded = check_images(task, keep_short=cache_side(ctx.pristine.image_spec))  # `clipfit train`: decoded once
    rec["decode_once_s"] = round(time.perf_counter() - t, 2)
    rec["images"] = len(task.train)
    for w in p.workers:
        for label, tk in (("decoded_once", decoded), ("from_files", task)):
            src = ImageSource(m, tk, dataclasses.replace(tcfg, num_workers=w), 1, ctx.dev)
            t, n = time.perf_counter(), 0
            for xb, _ in src.batches():
                xb.to(ctx.dev, non_blocking=True)
                n += len(xb)
            ctx.sync()
            rec[f"workers{w}_{label}_images_per_s"] = round(n / (time.perf_counter() - t), 1)
        rec[f"workers{w}_pinned"] = bool(src.loader.pin_memory)


def sec_memory(ctx: Ctx, rec: Record) -> None:
    p = ctx.plan
    c = p.run_classes[0]
    cuda = ctx.dev.type == "cuda"
    rec["unit"] = "MiB allocated by torch above the start (peak)" if cuda else "MiB of peak RSS above the start"
    for method in rec.planned:
        ns = argparse.Namespace(epochs=1, batch=p.batch, shots=max(1, -(-p.batch // c)), device=str(ctx.dev))
        spec = spec_for(ns, ctx.model, ctx.data[c], method, iterations=0, feature_views=1)  # one batch
        mcfg, tcfg = resolve_configs(spec)
        task = prepare_task(spec)
        bb = ctx.backbone()
        ctx.sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats(ctx.dev)
            before = torch.cuda.memory_allocated(ctx.dev)
        else:
            before = rss_peak_since_reset()[0] * 1024
        t = time.perf_counter()
        m = build_method(method, bb, task.classnames, task.template, mcfg)
        m.size_for(len(task.train))
        fit(m, task, tcfg, 1, ctx.dev, log=lambda s: None, progress=False)
        ctx.sync()
        peak = torch.cuda.max_memory_allocated(ctx.dev) if cuda else _status_kb("VmHWM") * 1024
        rec[method] = {"peak_mib": round((peak - before) / 2**20, 1), "seconds": round(time.perf_counter() - t, 2),
                       "trainable": m.num_trainable()}
        del m, bb
        if cuda:
            torch.cuda.empty_cache()


def sec_text_chunk(ctx: Ctx, rec: Record) -> None:
    for chunk in (0, 100):
        rec[f"text_chunk={chunk}"] = coop_step_peak(ctx.backbone(), ctx.plan.chunk_classes, chunk, ctx.plan.batch, ctx.dev)
        if ctx.dev.type == "cuda":
            torch.cuda.empty_cache()


SECTIONS: dict[str, Callable[[Ctx, Record], None]] = {
    "setup": sec_setup, "correctness": sec_correctness, "compile": sec_compile, "sdpa": sec_sdpa, "ddp": sec_ddp,
    "speed": sec_speed, "image_step": sec_image_step, "loader": sec_loader, "memory": sec_memory,
    "text_chunk": sec_text_chunk}


def planned(name: str, ctx: Ctx) -> list[str]:
    """What a section means to do, so that a time-out can list what it did not get to."""
    p = ctx.plan
    return {"correctness": list(CHECKED), "speed": [f"{m}@{c}" for m in ("coop", "clipfit") for c in p.classes],
            "memory": list(p.memory_methods or [n for n in METHODS.list() if not METHODS.get(n).preset]),
            "text_chunk": ["text_chunk=0", "text_chunk=100"],
            "image_step": ["clipfit_train_step", "frozen_encode"]}.get(name, [])


# -- running sections in time boxes ---------------------------------------------------------------------------------
class SectionTimeout(BaseException):
    """Raised in the main thread when a section's time box ends (a BaseException: no `except Exception` keeps it)."""


@contextlib.contextmanager
def time_box(seconds: float):
    def ring(signum, frame):
        raise SectionTimeout()

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Report:
    """gpu_check.json and gpu_check.md, rewritten after every section (and by the watchdog if a section hangs)."""

    def __init__(self, out: Path, header: dict, keep: dict | None):
        self.out, self.data = out, {**header, "sections": dict(keep or {})}
        self.lock = threading.Lock()

    def write(self) -> None:
        with self.lock:
            atomic_write_bytes(self.out / "gpu_check.json", (json.dumps(self.data, indent=1, default=str) + "\n").encode(),
                               durable=False)
            atomic_write_bytes(self.out / "gpu_check.md", markdown(self.data).encode(), durable=False)


def watchdog(report: Report, state: dict, grace: float) -> None:
    """If a section overruns its box by `grace` seconds (stuck where the alarm cannot interrupt it, e.g. in a CUDA
    call), record it as hung and end the process: the sections before it keep their figures."""
    while True:
        time.sleep(1)
        name, until = state.get("section"), state.get("until", float("inf"))
        if name and time.time() > until + grace:
            report.data["sections"][name].update(status="hung", error=f"still running {grace:.0f} s after its time "
                                                 "box; the process was ended (rerun the rest with --sections)")
            report.write()
            os._exit(3)


def run(ctx: Ctx, names: list[str], report: Report, budget: float) -> bool:
    deadline = time.time() + budget
    state: dict = {}
    threading.Thread(target=watchdog, args=(report, state, 60.0), daemon=True).start()
    ok, broken = True, None
    for name in names:
        box = ctx.plan.boxes[name]
        entry = report.data["sections"][name] = {"box_s": box}
        why = ("setup did not finish" if name != "setup" and ctx.pristine is None else
               f"the device is unusable after {broken}'s error" if broken else
               ddp_skip(ctx) if name == "ddp" else
               f"the overall budget of {budget:.0f} s is spent" if time.time() >= deadline else None)
        if why:
            entry.update(status="skipped", why=why)
            report.write()
            continue
        box = min(box, deadline - time.time())
        rec = Record(planned(name, ctx))
        t = time.perf_counter()
        state.update(section=name, until=time.time() + box)
        try:
            with time_box(box):
                SECTIONS[name](ctx, rec)
            entry["status"] = "ok"
        except SectionTimeout:
            entry.update(status="timeout", error=f"time box of {box:.0f} s reached")
        except Exception as e:  # noqa: BLE001 - recorded, and the other sections still run
            entry.update(status="failed", error=f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}",
                         traceback=traceback.format_exc(limit=-6).splitlines()[-12:])
            if ctx.dev.type == "cuda":
                try:
                    torch.cuda.synchronize(ctx.dev)
                except Exception:  # noqa: BLE001 - a CUDA error poisons the context for the rest of the process
                    broken = name
        state.update(section=None)
        entry.update(seconds=round(time.perf_counter() - t, 1), result=dict(rec), checks=rec.checks,
                     skipped=[k for k in rec.planned if k not in rec])
        if entry["status"] == "failed" or not all(c["passed"] for c in rec.checks):
            ok = False
        report.write()
        if ctx.dev.type == "cuda":
            torch.cuda.empty_cache()
    return ok


# -- the README-ready table ----------------------------------------------------------------------------------------
def markdown(data: dict) -> str:
    env, secs = data["environment"], data["sections"]
    lines = [f"# gpu_check: {env['device']}", "", f"`{data['command']}` ({data['started']}; torch {env['torch']}, "
             f"transformers {env['transformers']}, CUDA {env['cuda']})", "",
             "| section | status | seconds | notes |", "|---|---|---|---|"]
    for name, e in secs.items():
        note = e.get("why") or e.get("error") or (f"skipped: {', '.join(e['skipped'])}" if e.get("skipped") else "")
        lines.append(f"| {name} | {e.get('status', 'running')} | {e.get('seconds', '')} | {note} |")
    checks = [c for e in secs.values() for c in e.get("checks", [])]
    if checks:
        lines += ["", "| check | passed | measured | tolerance |", "|---|---|---|---|"]
        lines += [f"| {c['check']} | {'yes' if c['passed'] else '**NO**'} | {c['measured'] if c['measured'] is not None else ''} "
                  f"| {c['tolerance'].replace('|', '&#124;')} |" for c in checks]
    speed = secs.get("speed", {}).get("result", {})
    if speed:
        lines += ["", "| method @ classes | step: reference / clipfit (ms) | step ratio | 16-shot run, per epoch: "
                  "reference / clipfit (s) | run ratio |", "|---|---|---|---|---|"]
        for k, r in speed.items():
            run_cell = (f"{r['run_epoch_s_reference']} / {r['run_epoch_s_clipfit']}", r["run_ratio"]) if "run_ratio" in r \
                else ("not run", "")
            lines.append(f"| {k} | {r['step_ms_reference']} / {r['step_ms_clipfit']} | {r['step_ratio']}x | "
                         f"{run_cell[0]} | {run_cell[1]}{'x' if run_cell[1] else ''} |")
    img = secs.get("image_step", {}).get("result", {})
    rows = [(k, r) for k, r in img.items() if isinstance(r, dict)]
    if rows:
        lines += ["", f"| image step (peak bf16: {img.get('peak_bf16_tflops')} TFLOP/s) | batch | ms | images/s | "
                  "TFLOP/s | share of peak |", "|---|---|---|---|---|---|"]
        lines += [f"| {k} ({r['precision']}) | {r['batch']} | {r['ms']} | {r['images_per_s']} | {r['tflops']} | "
                  f"{r['share_of_bf16_peak']} |" for k, r in rows]
    for name, title in (("compile", "compile"), ("loader", "data loader"), ("memory", "memory"),
                        ("text_chunk", "text_chunk (1,000 classes, CoOp step)")):
        res = secs.get(name, {}).get("result", {})
        if res:
            lines += ["", f"{title}:", "```", json.dumps(res, indent=1), "```"]
    return "\n".join(lines) + "\n"


def environment(dev: torch.device) -> dict:
    import transformers

    cuda = dev.type == "cuda"
    name = torch.cuda.get_device_name(dev) if cuda else platform.processor() or "cpu"
    return {"device": name, "device_type": dev.type, "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
            "torch": torch.__version__, "transformers": transformers.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "bf16_supported": torch.cuda.is_bf16_supported() if cuda else True,
            "memory_gib": round(torch.cuda.get_device_properties(dev).total_memory / 2**30, 1) if cuda else None,
            "nccl": torch.distributed.is_available() and torch.distributed.is_nccl_available(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "python": platform.python_version(),
            "peak_bf16_tflops": (peak_bf16(name) or "unknown") if cuda else "unknown"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for gpu_check.json, gpu_check.md and the work files (model, JPEGs)")
    ap.add_argument("--quick", action="store_true", help="a tiny model and small sizes: every section in about a minute")
    ap.add_argument("--device", default=None, help="cuda (default when there is one), cuda:N or cpu")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated sections to run (setup always runs)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for all sections (default: 450; --quick: 300)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: clipfit's rule)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    dev = pick_device(args.device)
    plan = QUICK if args.quick else Plan()
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    names = ["setup"] + [s for s in SECTIONS if s in wanted and s != "setup"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    previous = out / "gpu_check.json"
    keep = json.loads(previous.read_text())["sections"] if previous.exists() and args.sections != ap.get_default(
        "sections") else None  # some sections again: the others' earlier results stay
    header = {"command": "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "plan": dataclasses.asdict(plan),
              "environment": environment(dev),
              "tolerances": {"bf16_vs_fp32": f"{BF16_ATOL} + {BF16_RTOL} |loss|", "fp32": f"{FP32_ATOL} + {FP32_RTOL} |x|"}}
    report = Report(out, header, keep)
    ctx = Ctx(plan, dev, out, compile_backend="aot_eager" if args.quick and dev.type == "cpu" else "inductor")
    ok = run(ctx, names, report, args.budget or (300.0 if args.quick else 450.0))
    failed = [n for n, e in report.data["sections"].items() if e.get("status") == "failed"]
    bad = [c["check"] for e in report.data["sections"].values() for c in e.get("checks", []) if not c["passed"]]
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}"
          + (f"; failed sections: {', '.join(failed)}" if failed else "") + (f"; failed checks: {'; '.join(bad)}" if bad else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

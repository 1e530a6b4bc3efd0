"""clipfit's training against a loop written the way the CoOp / CLIPFit reference code works, on the same model,
data and steps, interleaved; then the efficiency table (trainable parameters, time per training image) of every
method.

The reference-style loop (CoOp's trainer, which CLIPFit's code inherits): class prompts padded to the text
encoder's full context (77 tokens for CLIP; the mini-clip has 24) and re-encoded through the text tower on every
step; every training image decoded from its file (PIL) and augmented on every step; the image tower run on every
step; fp16 on GPU (autocast here), fp32 on CPU. clipfit: prompts padded to the longest one, a frozen image tower
encoded once per cached augmented view (`feature_views`), images decoded once, bf16 autocast on GPU.

Levels, each printed as reference / clipfit (above 1: clipfit is faster):
  step     one optimiser step each, warm, alternated (clipfit's feature cache is built beforehand)
  epoch    an E-epoch training run in this process (clipfit's `fit`, feature cache included) / E
  process  `clipfit train` vs this script's `--reference-run`, each a fresh Python process (imports, model
           loading, data checking included), alternated; peak memory: the child's RSS (CPU) or
           torch.cuda.max_memory_allocated (GPU, in-process)

    OMP_NUM_THREADS=1 python benchmarks/bench_train.py --classes 10,100 --steps 5 --epochs 2
    python benchmarks/bench_train.py --model vitb16-random --device cuda --classes 10,100,1000
    python benchmarks/bench_train.py --table-only          # the efficiency table alone
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from clipfit.backbone import EMBEDDED_MODEL, Backbone, clip_config, make_random_clip
from clipfit.engine.loop import (
    FeatureSource,
    cached_features,
    fit,
    forward_step,
    make_optimizer,
    pick_device,
    seed_everything,
)
from clipfit.engine.run import RunSpec, prepare_task, resolve_configs
from clipfit.method import METHODS, Step, build_method
from clipfit.threads import set_threads

HERE = Path(__file__).resolve()
SRC = str(HERE.parents[1] / "src")


# -- model and data -------------------------------------------------------------------------------------------
def vitb16_random(out: Path) -> str:
    """A ViT-B/16-sized CLIP with random weights, saved in transformers format (tokenizer of the tiny kind)."""
    from transformers import CLIPImageProcessor, CLIPModel

    if (out / "config.json").exists():
        return str(out)
    make_random_clip(out)
    tok_len = len(Backbone.from_pretrained(str(out)).tokenizer)
    cfg = clip_config("ViT-B/16", vocab_size=tok_len, max_positions=77)
    cfg.text_config.pad_token_id, cfg.text_config.bos_token_id, cfg.text_config.eos_token_id = 0, 2, 3
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(out)
    return str(out)


def _write_class(job: tuple[Path, int, str, int, int]) -> None:
    root, c, name, shots, px = job
    rng = np.random.default_rng(c)
    colour = rng.integers(0, 255, 3)
    for split, n in (("train", shots), ("val", 1), ("test", 1)):
        d = root / split / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = np.clip(colour[None, None] + rng.normal(0, 40, (px, px, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(d / f"{i:02d}.jpg", quality=90)


def write_data(root: Path, classes: int, shots: int, px: int, names: list[str] | None = None) -> str:
    """root/{train,val,test}/<class>/: `shots` JPEGs per class for training, one for validation and one for test;
    class folders named `names` (default class_0000, class_0001, ...). Many classes: written by several processes
    (start it before CUDA is initialised: the workers are forked)."""
    if (root / "done").exists():
        return str(root)
    jobs = [(root, c, names[c] if names else f"class_{c:04d}", shots, px) for c in range(classes)]
    if classes * (shots + 2) < 500:
        for job in jobs:
            _write_class(job)
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(_write_class, jobs, chunksize=16))
    (root / "done").write_text("")
    return str(root)


def spec_for(args, model: str, data: str, method: str = "coop", **extra) -> RunSpec:
    settings = {"epochs": args.epochs, "batch_size": args.batch, "select": "last", **extra}
    return RunSpec(dataset=f"imagefolder:{data}", method=method, model=model, shots=args.shots, settings=settings,
                   device=args.device)


# -- the reference-style loop ----------------------------------------------------------------------------------
def pad_prompts(m, n_pos: int) -> None:
    """Pad a method's class prompts to the text encoder's full context (77 for CLIP), as CoOp tokenises."""
    if hasattr(m, "_ids"):  # learned-context prompts (CoOp's family)
        m._ids, m._mask = (F.pad(t, (0, n_pos - t.shape[1]), value=0) for t in (m._ids, m._mask))
        return
    m._tokens = [{k: F.pad(v, (0, n_pos - v.shape[1]), value=0) for k, v in tok.items()} for tok in m._tokens]


class Reference:
    """CoOp (or another method's parameters and loss: CLIPFit) trained as the reference code does (see the
    module's docstring)."""

    def __init__(self, bb: Backbone, task, mcfg, tcfg, device: torch.device, seed: int = 1, method: str = "coop"):
        from clipfit.data.transforms import train_transform

        self.bb, self.task, self.cfg, self.device = bb, task, tcfg, device
        seed_everything(seed)
        self.m = build_method(method, bb, task.classnames, task.template, mcfg).to(device)
        self.m.reset_parameters()
        pad_prompts(self.m, bb.model.text_model.embeddings.position_embedding.weight.shape[0])
        self.m.on_train_start()  # CLIPFit: its zero-shot text features, once
        self.opt = make_optimizer(list(self.m.trainable().values()), tcfg)
        self.tf = train_transform(bb.image_spec, seed=seed, scale=(tcfg.crop_scale, 1.0), flip=tcfg.flip)
        self.gen = torch.Generator().manual_seed(seed)

    def batches(self):
        n, b = len(self.task.train), self.cfg.batch_size
        perm = torch.randperm(n, generator=self.gen).tolist()
        for i in range(0, n - b + 1 if n >= b else 1, b):
            items = [self.task.train[j] for j in perm[i:i + b]]
            x = torch.stack([self.tf(self.task.reader(it.key)) for it in items])  # decoded from the file every step
            yield x, torch.tensor([it.label for it in items])

    def step(self, x, y) -> None:
        dev = self.device
        ctx = torch.autocast("cuda", dtype=torch.float16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
        with ctx:
            img = self.m.image_features(x.to(dev))
            text = self.m.text_features()
            logits = self.bb.logit_scale * img @ text.t()
        loss, _ = self.m.loss(Step(x, y.to(dev), text, img, logits.float()))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def run(self, epochs: int) -> None:
        for _ in range(epochs):
            for x, y in self.batches():
                self.step(x, y)


class Clipfit:
    """clipfit's step (the body of `engine.loop.train_epochs`): on its cached features for a frozen image tower
    (CoOp), on its decoded-once images otherwise (CLIPFit)."""

    def __init__(self, bb: Backbone, task, mcfg, tcfg, device: torch.device, seed: int = 1, method: str = "coop"):
        from clipfit.engine.loop import ImageSource, on_features

        seed_everything(seed)
        self.m = build_method(method, bb, task.classnames, task.template, mcfg).to(device)
        self.m.reset_parameters()
        self.m.on_train_start()
        self.cfg, self.device = tcfg, device
        if on_features(self.m, tcfg):
            train, val = cached_features(self.m, task, tcfg, seed, device, progress=False)
            self.source = FeatureSource(self.m, train, val, tcfg, seed, device)
        else:
            self.source = ImageSource(self.m, task, tcfg, seed, device)
        self.opt = make_optimizer(list(self.m.trainable().values()), tcfg)

    def batches(self):
        return self.source.batches()

    def step(self, x, y) -> None:
        step = forward_step(self.m, self.source.image_features, x.to(self.device), y.to(self.device), None,
                            self.device, self.cfg.precision)
        step.loss, _ = self.m.loss(step)
        self.opt.zero_grad(set_to_none=True)
        self.m.backward(step)
        self.opt.step()


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def per_step(ref: Reference, ours: Clipfit, steps: int, dev: torch.device) -> tuple[float, float]:
    times = {"ref": [], "ours": []}
    its = {"ref": iter(()), "ours": iter(())}
    objs = {"ref": ref, "ours": ours}

    def batch(k):
        try:
            return next(its[k])
        except StopIteration:
            its[k] = iter(objs[k].batches())
            return next(its[k])

    for i in range(steps + 1):  # the first of each: warm-up
        for k in ("ref", "ours"):
            sync(dev)
            t = time.perf_counter()
            objs[k].step(*batch(k))  # the reference's data loading is part of its step
            sync(dev)
            if i:
                times[k].append(time.perf_counter() - t)
    return float(np.median(times["ref"])), float(np.median(times["ours"]))


def per_epoch(args, model: str, data: str, bb: Backbone, dev: torch.device, method: str = "coop") -> dict:
    spec = spec_for(args, model, data, method)
    mcfg, tcfg = resolve_configs(spec)
    task = prepare_task(spec)
    out = {"ref": [], "ours": [], "ref_mem": 0, "ours_mem": 0}
    for _ in range(args.repeats):
        for k in ("ref", "ours"):
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            sync(dev)
            t = time.perf_counter()
            if k == "ref":
                Reference(bb, task, mcfg, tcfg, dev, method=method).run(args.epochs)
            else:
                m = build_method(method, bb, task.classnames, task.template, mcfg)
                fit(m, task, tcfg, 1, dev, log=lambda s: None, progress=False)
            sync(dev)
            out[k].append((time.perf_counter() - t) / args.epochs)
            if dev.type == "cuda":
                out[f"{k}_mem"] = max(out[f"{k}_mem"], torch.cuda.max_memory_allocated())
    return {"ref": float(np.median(out["ref"])), "ours": float(np.median(out["ours"])),
            "ref_mem": out["ref_mem"], "ours_mem": out["ours_mem"], "images": len(task.train)}


def run_child(cmd: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of a child process."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss * 1024


def whole_process(args, model: str, data: str, tmp: Path) -> dict:
    common = ["--model", model, "--shots", str(args.shots), "--set", f"epochs={args.epochs}", "--set",
              f"batch_size={args.batch}", "--set", "select=last"] + (["--device", args.device] if args.device else [])
    if args.threads:
        common += ["--threads", str(args.threads)]
    out = {"ref": [], "ours": [], "ref_rss": 0, "ours_rss": 0}
    for r in range(args.repeats):
        for k in ("ref", "ours"):
            if k == "ref":
                cmd = [sys.executable, str(HERE), "--reference-run", "--data", data, *common]
            else:
                cmd = [sys.executable, "-m", "clipfit.cli", "train", "--method", "coop", "--dataset",
                       f"imagefolder:{data}", "--no-test", "--quiet", "--overwrite", "--out", str(tmp / f"run{r}"),
                       *common]
            wall, rss = run_child(cmd)
            out[k].append(wall)
            out[f"{k}_rss"] = max(out[f"{k}_rss"], rss)
    return {"ref": float(np.median(out["ref"])), "ours": float(np.median(out["ours"])),
            "ref_rss": out["ref_rss"], "ours_rss": out["ours_rss"]}


def reference_run(args) -> None:
    """This script as a process: load, check and train as the reference-style loop (no test evaluation)."""
    settings = {}
    for s in args.set:
        k, _, v = s.partition("=")
        settings[k] = v if k == "select" else int(v)
    ns = argparse.Namespace(**{**vars(args), "epochs": settings["epochs"], "batch": settings["batch_size"]})
    spec = spec_for(ns, args.model, args.data)
    dev = pick_device(args.device)
    mcfg, tcfg = resolve_configs(spec)
    task = prepare_task(spec)
    bb = Backbone.from_pretrained(args.model, device=dev)
    Reference(bb, task, mcfg, tcfg, dev).run(tcfg.epochs)


# -- the efficiency table --------------------------------------------------------------------------------------
def efficiency_table(args, model: str, data: str, dev: torch.device) -> list[tuple[str, int, float, str]]:
    rows = []
    for name in [n for n in METHODS.list() if not METHODS.get(n).preset]:
        spec = spec_for(args, model, data, method=name)
        spec.settings = {"epochs": args.table_epochs, "batch_size": args.batch}
        mcfg, tcfg = resolve_configs(spec)
        task = prepare_task(spec)
        bb = Backbone.from_pretrained(model, device=dev)
        try:
            m = build_method(name, bb, task.classnames, task.template, mcfg).to(dev)
        except Exception as e:  # noqa: BLE001 - a method that does not fit this model: say so and go on
            rows.append((name, -1, float("nan"), f"not built: {str(e)[:60]}"))
            continue
        m.size_for(len(task.train))
        from clipfit.engine.loop import on_features

        how = "closed form" if m.closed_form else "features" if on_features(m, tcfg) else "images"
        t = time.perf_counter()
        res = fit(m, task, tcfg, 1, dev, log=lambda s: None, progress=False)
        sec = time.perf_counter() - t
        epochs = max(1, res.epochs)
        rows.append((name, m.num_trainable(), sec / (len(task.train) * epochs), how))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="embedded", help="embedded (the mini-clip) or vitb16-random")
    ap.add_argument("--classes", default="10,100,1000", help="comma-separated class counts")
    ap.add_argument("--shots", type=int, default=4, help="training images per class")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per side at the step level")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the epoch- and process-level runs")
    ap.add_argument("--repeats", type=int, default=1, help="alternated repeats of the epoch- and process-level runs")
    ap.add_argument("--image-px", type=int, default=256, help="side of the JPEGs written as training data")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: clipfit's rule)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--levels", default="step,epoch,process", help="which comparisons to run")
    ap.add_argument("--table-only", action="store_true", help="only the efficiency table")
    ap.add_argument("--no-table", action="store_true")
    ap.add_argument("--table-classes", type=int, default=10)
    ap.add_argument("--table-epochs", type=int, default=2)
    ap.add_argument("--work", default=None, help="folder for data and the model (default: a temporary one)")
    ap.add_argument("--reference-run", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    if args.reference_run:
        return reference_run(args)
    dev = pick_device(args.device)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_train_"))
    work.mkdir(parents=True, exist_ok=True)
    model = EMBEDDED_MODEL if args.model == "embedded" else vitb16_random(work / "vitb16-random")
    bb = Backbone.from_pretrained(model, device=dev)
    px = args.image_px
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {threads} threads, device {dev}"
          + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""))
    print(f"model {args.model}, CoOp, {args.shots} shots, batch {args.batch}, {args.epochs} epochs, "
          f"{px}x{px} JPEGs; ratios are reference / clipfit")
    levels = set(args.levels.split(","))
    mem = "peak GPU memory" if dev.type == "cuda" else "peak RSS"
    if not args.table_only:
        for classes in [int(c) for c in args.classes.split(",")]:
            data = write_data(work / f"data{classes}_{args.shots}_{px}", classes, args.shots, px)
            spec = spec_for(args, model, data)
            mcfg, tcfg = resolve_configs(spec)
            task = prepare_task(spec)
            line = f"{classes:>5} classes:"
            if "step" in levels:
                ref, ours = per_step(Reference(bb, task, mcfg, tcfg, dev), Clipfit(bb, task, mcfg, tcfg, dev),
                                     args.steps, dev)
                line += f" step {ref * 1e3:.1f} / {ours * 1e3:.1f} ms = {ref / ours:.2f}x;"
            if "epoch" in levels:
                e = per_epoch(args, model, data, bb, dev)
                line += f" epoch {e['ref']:.2f} / {e['ours']:.2f} s = {e['ref'] / e['ours']:.2f}x;"
                if dev.type == "cuda":
                    line += f" {mem} {e['ref_mem'] / 2**20:.0f} / {e['ours_mem'] / 2**20:.0f} MiB;"
            if "process" in levels:
                p = whole_process(args, model, data, work)
                line += f" process {p['ref']:.1f} / {p['ours']:.1f} s = {p['ref'] / p['ours']:.2f}x"
                if dev.type != "cuda":
                    line += f"; {mem} {p['ref_rss'] / 2**20:.0f} / {p['ours_rss'] / 2**20:.0f} MiB"
            print(line, flush=True)
    if not args.no_table:
        data = write_data(work / f"data{args.table_classes}_{args.shots}_{px}", args.table_classes, args.shots, px)
        print(f"\nefficiency ({args.table_classes} classes, {args.shots} shots, {args.table_epochs} epochs, "
              "time includes feature caching):")
        print(f"{'method':<16}{'trainable':>12}{'ms/train image':>16}  trains on")
        for name, n, sec, how in efficiency_table(args, model, data, dev):
            print(f"{name:<16}{n:>12,}{sec * 1e3:>16.2f}  {how}", flush=True)
    print(json.dumps({"peak_rss_this_process_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


if __name__ == "__main__":
    main()

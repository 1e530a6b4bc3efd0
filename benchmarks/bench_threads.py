"""Training-step time against torch's CPU thread count, on an idle machine and with another process sharing the
cores (a busy torch process with torch's default threads), for the mini-clip and a ViT-B/16-sized random CLIP.
What clipfit's default thread rule (`clipfit.threads.default_threads`) was chosen from.

    python benchmarks/bench_threads.py --threads 1,2 --models embedded,vitb16-random
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from clipfit.backbone import EMBEDDED_MODEL, Backbone
from clipfit.engine.loop import forward_step
from clipfit.method import build_method

COMPETITOR = ("import torch\nx = torch.randn(512, 512)\nwhile True:\n    x = torch.tanh(x @ x) \n")


def step_time(model: str, threads: int, batch: int, steps: int, method: str) -> float:
    torch.set_num_threads(threads)
    bb = Backbone.from_pretrained(model)
    size = bb.image_spec.size
    m = build_method(method, bb, [f"class {i}" for i in range(10)], "a photo of a {}.")
    m.on_train_start()
    opt = torch.optim.SGD(list(m.trainable().values()), lr=1e-3)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        step = forward_step(m, m.image_features, x, y, None, torch.device("cpu"), "fp32")
        step.loss, _ = m.loss(step)
        opt.zero_grad()
        m.backward(step)
        opt.step()
        if i:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default="embedded,vitb16-random")
    ap.add_argument("--method", default="clipfit", help="clipfit: gradients through both towers")
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_train import vitb16_random

    work = Path(tempfile.mkdtemp(prefix="bench_threads_"))
    print(f"machine: {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at start), torch {torch.__version__}")
    for name in args.models.split(","):
        model = EMBEDDED_MODEL if name == "embedded" else vitb16_random(work / "vitb16")
        batch, steps = (32, args.steps * 4) if name == "embedded" else (4, args.steps)
        for load in ("idle", "shared"):
            comp = subprocess.Popen([sys.executable, "-c", COMPETITOR]) if load == "shared" else None
            try:
                res = {t: step_time(model, int(t), batch, steps, args.method) for t in args.threads.split(",")}
            finally:
                if comp:
                    comp.kill()
                    comp.wait()
            best = min(res.values())
            print(f"{name:>14} {load:>6}, {args.method} step, batch {batch}: "
                  + ", ".join(f"{t} threads {s * 1e3:.0f} ms ({s / best:.2f}x)" for t, s in res.items()), flush=True)


if __name__ == "__main__":
    main()

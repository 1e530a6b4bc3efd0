"""Memory of a CoOp training step on many classes: every class prompt through the text encoder at once
(text_chunk=0) versus in chunks with activation checkpointing (text_chunk=N). Each setting runs in its own process;
the peak resident memory of one step (forward + backward + optimiser step, after a warm-up step) is measured
from Linux's VmHWM, reset just before the step, minus the memory before it. Also prints the step's time.

    python benchmarks/bench_text_chunk.py                                   # embedded mini-clip, 1,000 classes
    python benchmarks/bench_text_chunk.py --arch ViT-B/16 --chunks 0,100    # random ViT-B/16-sized CLIP
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time

import torch


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def classnames(tokenizer, n: int) -> list[str]:
    """n distinct names of 1-4 words of the tokenizer's vocabulary (CLIP's vocabulary has them by the thousand)."""
    words = sorted(w for w in tokenizer.get_vocab() if w.isalpha())[:40] or ["a"]
    names = (" ".join(c) for k in range(1, 5) for c in itertools.product(words, repeat=k))
    return list(itertools.islice(names, n))


def rss_peak_since_reset() -> tuple[int, int]:
    """(resident memory in KiB now, after resetting Linux's peak-RSS mark to it); VmHWM - the first is the peak since."""
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    return before, _status_kb("VmHWM")


def coop_step_peak(bb, classes: int, chunk: int, batch: int = 32, device: torch.device | None = None) -> dict:
    """Peak memory (MiB) and time of one CoOp training step on `classes` classes with text_chunk=`chunk`, after a
    warm-up step: torch.cuda.max_memory_allocated on CUDA, the process's peak RSS (VmHWM) on CPU, above the memory
    before the step."""
    from clipfit.engine.loop import forward_step
    from clipfit.method import METHODS, build_method

    device = device or torch.device("cpu")
    cfg = METHODS.get("coop").config()
    cfg.text_chunk = chunk
    m = build_method("coop", bb, classnames(bb.tokenizer, classes), "a photo of a {}.", cfg).to(device)
    m.train()
    opt = torch.optim.SGD(list(m.trainable().values()), lr=0.002)
    d = bb.model.visual_projection.out_features
    feats = torch.nn.functional.normalize(torch.randn(batch, d), dim=-1).to(device)  # frozen image features (CoOp)
    labels = torch.randint(0, classes, (batch,)).to(device)

    def step():
        s = forward_step(m, m.adapt_image_features, feats, labels, None, device, "fp32")  # frozen image features
        s.loss, _ = m.loss(s)
        opt.zero_grad(set_to_none=True)
        m.backward(s)
        opt.step()

    step()  # warm-up: the optimiser state and allocator pools exist before the measured step
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 1024
    else:
        before, _ = rss_peak_since_reset()
    t0 = time.perf_counter()
    step()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 1024 if cuda else _status_kb("VmHWM")
    return {"classes": classes, "chunk": chunk, "step_peak_mib": round((peak - before) / 1024, 1),
            "step_seconds": round(seconds, 3)}


def one(args) -> dict:
    sys.path.insert(0, os.path.dirname(__file__))
    from bench_kd_step import load

    torch.set_num_threads(args.threads)
    return {"model": args.arch or "mini-clip", **coop_step_peak(load(args), args.classes, args.chunk, args.batch)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model (default: the embedded mini-clip)")
    ap.add_argument("--arch", default=None, help="a random CLIP of this architecture, e.g. ViT-B/16")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--chunks", default="0,100", help="text_chunk values to compare (0 = all classes at once)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=None, help=argparse.SUPPRESS)  # one setting, in this process
    args = ap.parse_args()
    if args.chunk is not None:
        print(json.dumps(one(args)))
        return
    rows = []
    for c in [int(x) for x in args.chunks.split(",")]:
        cmd = [sys.executable, __file__, "--chunk", str(c)] + [a for a in sys.argv[1:]]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["step_peak_mib"]
    for r in rows[1:]:
        print(f"text_chunk={r['chunk']}: {r['step_peak_mib']} MiB vs {base} MiB at once "
              f"({base / max(r['step_peak_mib'], 1e-9):.1f}x less), step {r['step_seconds']} s vs {rows[0]['step_seconds']} s")


if __name__ == "__main__":
    main()

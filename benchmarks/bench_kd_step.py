"""CLIPFit training-step cost: frozen zero-shot text features computed once (clipfit) versus a frozen copy of
the text encoder run on every step (what a straightforward KD implementation does). Both variants run side by
side in one process on the same model and batches; the script prints their step times and the ratio.

    python benchmarks/bench_kd_step.py                        # the embedded mini-clip, 32 classes, CPU
    python benchmarks/bench_kd_step.py --arch ViT-B/16 --classes 100 --batch 32 --steps 5   # random ViT-B/16
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch
import torch.nn.functional as F

from clipfit.backbone import Backbone, clip_config
from clipfit.engine.loop import pick_device
from clipfit.method import Step, build_method
from clipfit.method.clipfit import CLIPFitConfig


def load(args) -> Backbone:
    if args.arch:
        from transformers import CLIPModel

        from clipfit.backbone import make_random_clip

        tmp = tempfile.mkdtemp()
        make_random_clip(tmp)  # tokenizer + processor of the right kind; the model is replaced below
        bb = Backbone.from_pretrained(tmp)
        cfg = clip_config(args.arch, vocab_size=len(bb.tokenizer), max_positions=77)
        cfg.text_config.eos_token_id, cfg.text_config.pad_token_id, cfg.text_config.bos_token_id = 3, 0, 2
        bb.model = CLIPModel(cfg).eval()
        bb.processor.crop_size = {"height": cfg.vision_config.image_size}
        return bb
    return Backbone.from_pretrained(args.model)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model (default: embedded mini-clip)")
    ap.add_argument("--arch", default=None, help="random architecture instead, e.g. ViT-B/16")
    ap.add_argument("--classes", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    dev = pick_device(args.device)
    bb = load(args).to(dev)
    size = bb.image_spec.size
    names = [f"class {i}" for i in range(args.classes)]
    m = build_method("clipfit", bb, names, "a photo of a {}.", CLIPFitConfig(beta=8.0)).to(dev)
    frozen = copy.deepcopy(bb).requires_grad_(False)
    opt = torch.optim.SGD(list(m.trainable().values()), lr=1e-3)
    x = torch.randn(args.batch, 3, size, size, device=dev)
    y = torch.randint(0, args.classes, (args.batch,), device=dev)

    def step(per_step_teacher: bool) -> None:
        text = m.text_features()
        image = m.image_features(x)
        logits = m.logits(image, text)
        if per_step_teacher:
            with torch.no_grad():
                zs = frozen.encode_text(m._tokens[0])
            loss = F.cross_entropy(logits, y) + 8.0 * (1 - F.cosine_similarity(text, zs, dim=-1).mean())
        else:
            loss, _ = m.loss(Step(x, y, text, image, logits))
        opt.zero_grad()
        loss.backward()
        opt.step()

    m.on_train_start()
    times = {"once": 0.0, "per-step": 0.0}
    for _ in range(2):  # warm up both, then time them interleaved
        step(False), step(True)
    for _ in range(args.steps):
        for name, flag in (("once", False), ("per-step", True)):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            step(flag)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times[name] += time.perf_counter() - t
    once, per = times["once"] / args.steps, times["per-step"] / args.steps
    print(f"device {dev}, {args.arch or 'mini-clip'}, {args.classes} classes, batch {args.batch}, {args.steps} steps each")
    print(f"zero-shot text features computed once : {once * 1000:.1f} ms/step")
    print(f"frozen text encoder run every step    : {per * 1000:.1f} ms/step")
    print(f"ratio per-step / once                 : {per / once:.2f}x")


if __name__ == "__main__":
    main()

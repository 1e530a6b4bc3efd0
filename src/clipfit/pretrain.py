"""Pretrain the project's own small CLIP on the procedural image-caption world (clipfit.data.synth).

    clipfit pretrain-mini --out DIR [--steps 1800 --batch-size 256 --seed 0 --threads 2]
    python -m clipfit.pretrain --out DIR ...            (the same, without the clipfit command)
    python -m clipfit.pretrain --evaluate DIR [--write-card]   (zero-shot accuracies; optionally refresh the card)

A transformers `CLIPModel` (32x32 images, patch 8, width 128, 4 layers, 4 heads, projection 128) with a word
tokenizer for the world's vocabulary (clipfit.tokenizer) is trained from scratch with the CLIP contrastive loss on
freshly generated batches: every caption in a batch that describes an image (all the attributes it mentions agree)
counts as a positive for it, and the targets spread evenly over the positives. AdamW, linear warm-up, cosine decay.
The result is saved in transformers format (safetensors, tokenizer, CLIPImageProcessor) with a model card whose
numbers are measured by `evaluate_mini`.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import synth
from .errors import ClipfitError

IMAGE_MEAN = (0.2, 0.2, 0.2)  # roughly the pixel statistics of the pretraining world
IMAGE_STD = (0.25, 0.25, 0.25)


@dataclass
class PretrainConfig:
    steps: int = 1800
    batch_size: int = 256
    seed: int = 0
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 100
    hidden: int = 128
    layers: int = 4
    text_layers: int = 0  # 0: as many as `layers`
    heads: int = 4
    proj: int = 128
    patch: int = 8
    max_length: int = 24
    threads: int = 2


def build_model(cfg: PretrainConfig):
    """A randomly initialised (model, tokenizer, image processor) for the world's vocabulary."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from .tokenizer import build_tokenizer, special_ids

    tok = build_tokenizer(synth.vocabulary(), max_length=cfg.max_length)
    common = dict(hidden_size=cfg.hidden, intermediate_size=4 * cfg.hidden, num_attention_heads=cfg.heads)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tok), max_position_embeddings=cfg.max_length,
                         num_hidden_layers=cfg.text_layers or cfg.layers, **common, **special_ids()),
        vision_config=dict(image_size=synth.IMAGE_SIZE, patch_size=cfg.patch, num_hidden_layers=cfg.layers, **common),
        projection_dim=cfg.proj,
    )
    torch.manual_seed(cfg.seed)
    model = CLIPModel(config)
    s = synth.IMAGE_SIZE
    proc = CLIPImageProcessor(size={"shortest_edge": s}, crop_size={"height": s, "width": s},
                              image_mean=list(IMAGE_MEAN), image_std=list(IMAGE_STD))
    return model, tok, proc


def to_pixels(images: np.ndarray, mean=IMAGE_MEAN, std=IMAGE_STD) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> normalised (n, 3, H, W) float tensor, as CLIPImageProcessor does for 32x32 input."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    sd = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / sd


def _features(out) -> torch.Tensor:
    return out.pooler_output if hasattr(out, "pooler_output") else out


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP loss with several positives: targets spread evenly over every matching pair.

    img, txt: (n, d) L2-normalised; positives: (n, n) bool, [i, j] True when caption j describes image i
    (the diagonal always is)."""
    logits = scale * img @ txt.t()
    p = positives.float()
    loss_i = -(F.log_softmax(logits, dim=1) * (p / p.sum(1, keepdim=True))).sum(1).mean()
    loss_t = -(F.log_softmax(logits, dim=0) * (p / p.sum(0, keepdim=True))).sum(0).mean()
    return (loss_i + loss_t) / 2


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to 0 at cfg.steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def pretrain_mini(out_dir: str | Path, steps: int = 1800, batch_size: int = 256, seed: int = 0, *,
                  lr: float = 1e-3, threads: int = 2, evaluate: bool = True, progress: bool = True,
                  command: str | None = None, normalise: bool = True, **arch) -> dict:
    """Pretrain the small CLIP and save it (model, tokenizer, image processor, training.json, README.md) in out_dir.

    arch: overrides of PretrainConfig fields (hidden, layers, text_layers, heads, proj, patch, max_length, warmup,
    weight_decay), for quick tests. normalise: apply `normalise_for_finetuning` before saving (the shipped model is). Returns the training record: recipe, time, final loss and, with
    evaluate=True, the zero-shot accuracies of `evaluate_mini`.
    """
    cfg = PretrainConfig(steps=steps, batch_size=batch_size, seed=seed, lr=lr, threads=threads, **arch)
    if cfg.steps < 1 or cfg.batch_size < 2:
        raise ClipfitError("pretrain-mini needs --steps >= 1 and --batch-size >= 2")
    if cfg.text_layers < 0:
        raise ClipfitError(f"--text-layers {cfg.text_layers}: give a number of layers >= 1 (or 0 for the image tower's)")
    cfg.warmup = min(cfg.warmup, max(1, cfg.steps // 10))
    torch.set_num_threads(cfg.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    model, tok, proc = build_model(cfg)
    history, final_loss, seconds = _train(model, tok, cfg, progress)
    model.eval()
    normalised = normalise_for_finetuning(model, tok) if normalise else None
    for part in (model, tok, proc):
        part.save_pretrained(out)
    _readable(out)
    record = {
        "recipe": asdict(cfg),
        "command": command or f"clipfit pretrain-mini --out {out} --steps {cfg.steps} --batch-size {cfg.batch_size} "
                              f"--seed {cfg.seed} --threads {cfg.threads}",
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocabulary": synth.vocabulary(),
        "held_out_pairs": sorted(synth.pair_name(s, c) for s, c in synth.HELD_OUT_PAIRS),
        "train_seconds": round(seconds, 1),
        "steps_per_second": round(cfg.steps / seconds, 3),
        "final_loss": round(final_loss, 4),
        "machine": f"{platform.machine()}, torch {torch.__version__}, {cfg.threads} threads",
        "history": history,
    }
    if normalised:
        record["normalised_for_finetuning"] = normalised
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    if evaluate:
        metrics = evaluate_mini(out, progress=progress)
        record["zero_shot"] = metrics
        write_card(out)
    return record


def _train(model, tok, cfg: PretrainConfig, progress: bool) -> tuple[list[dict], float, float]:
    """The contrastive pretraining loop on fresh batches of the world: (the loss every 50 steps, the final running
    mean of the loss, seconds)."""
    model.train()
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    rng = np.random.default_rng(cfg.seed)
    max_scale = math.log(100.0)
    history = []
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="pretrain-mini", unit="step", disable=not progress, mininterval=1.0)
    ema = None
    for step in bar:
        batch = synth.pretraining_batch(cfg.batch_size, rng)
        pixels = to_pixels(batch.images)
        tokens = tok(batch.captions, padding=True, truncation=True, return_tensors="pt")
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        img = F.normalize(_features(model.get_image_features(pixel_values=pixels)), dim=-1)
        txt = F.normalize(_features(model.get_text_features(input_ids=tokens["input_ids"],
                                                            attention_mask=tokens["attention_mask"])), dim=-1)
        loss = contrastive_loss(img, txt, model.logit_scale.exp(), torch.from_numpy(batch.positives))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, max_scale)
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0 or step == cfg.steps - 1:
            history.append({"step": step, "loss": round(ema, 4), "lr": lr_at(step, cfg),
                            "seconds": round(time.perf_counter() - t0, 1)})
        bar.set_postfix(loss=f"{ema:.3f}", scale=f"{model.logit_scale.exp().item():.1f}")
    bar.close()
    return history, ema, time.perf_counter() - t0


def _readable(folder: Path) -> None:
    """Every file of `folder` readable by all: save_pretrained may create owner-only files, and the package ships
    them."""
    for f in folder.iterdir():
        if f.is_file():
            f.chmod(0o644)


# ------------------------------------------------------------------------------------------------------------
# Normalisation for fine-tuning


CLIP_LOGIT_SCALE = 100.0  # where CLIP's learned temperature ends (its training clamps it there)


@torch.no_grad()
def normalise_for_finetuning(model, tokenizer) -> dict:
    """Two changes that leave every zero-shot prediction as it is but make the paper recipes' learning rates act on
    this model as on CLIP:

    - the text tower's residual stream is rescaled to unit RMS (per dimension, after the last layer, over the class
      prompts of the world): the token and position embeddings and every layer's attention output projection and
      FFN output Linear (weights and biases) are multiplied by a = 1 / RMS, and the LayerNorms' eps by a^2, which
      leaves every LayerNorm's output, and so the model's function, unchanged. SGD is not invariant to that scale:
      pretrained, the stream has RMS ~4.4, so a step on a text FFN bias moved the features ~20x less than on a
      unit-scale stream, and CLIPFit's text biases did not move at its learning rate.
    - the logit scale is set to CLIP's 100 (pretraining stopped at ~31; it scales every logit, not their order).
    Returns what was done (recorded in training.json)."""
    tm = model.text_model
    prompts = [f"a photo of a {c} {s}." for s in synth.SHAPES for c in synth.COLOURS]
    tok = tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
    hidden = tm(**tok, output_hidden_states=True).hidden_states[-1]
    mask = tok["attention_mask"].bool()
    rms = float(hidden[mask].pow(2).mean().sqrt())
    a = 1.0 / rms
    for p in (tm.embeddings.token_embedding.weight, tm.embeddings.position_embedding.weight):
        p.mul_(a)
    for layer in tm.encoder.layers:
        for lin in (layer.self_attn.out_proj, layer.mlp.fc2):
            lin.weight.mul_(a)
            lin.bias.mul_(a)
    eps = model.config.text_config.layer_norm_eps * a * a
    model.config.text_config.layer_norm_eps = eps
    for m in tm.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = eps
    before = float(model.logit_scale.exp())
    model.logit_scale.fill_(math.log(CLIP_LOGIT_SCALE))
    return {"text_residual_rms_before": round(rms, 4), "text_residual_scale": a, "text_layer_norm_eps": eps,
            "logit_scale_before": round(before, 4), "logit_scale": CLIP_LOGIT_SCALE}


def normalise_model_dir(model_dir: str | Path) -> dict:
    """Apply `normalise_for_finetuning` to a saved model in place (and record it in its training.json)."""
    from transformers import AutoTokenizer, CLIPModel

    d = Path(model_dir)
    model = CLIPModel.from_pretrained(d).eval()
    tok = AutoTokenizer.from_pretrained(d)
    done = normalise_for_finetuning(model, tok)
    model.save_pretrained(d)
    rec_path = d / "training.json"
    if rec_path.exists():
        rec = json.loads(rec_path.read_text())
        rec["normalised_for_finetuning"] = done
        rec_path.write_text(json.dumps(rec, indent=2) + "\n")
    _readable(d)
    return done


# ------------------------------------------------------------------------------------------------------------
# Zero-shot evaluation


@torch.no_grad()
def _zero_shot(backbone, images: np.ndarray, prompts: list[str], batch: int = 512) -> np.ndarray:
    """Predicted class index for each image, by cosine similarity to the prompts' text features."""
    spec = backbone.image_spec
    txt = backbone.encode_text(backbone.tokenize(prompts))
    preds = []
    for i in range(0, len(images), batch):
        img = backbone.encode_image(to_pixels(images[i:i + batch], spec.mean, spec.std).to(backbone.device))
        preds.append((img @ txt.t()).argmax(1).cpu().numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def _task_arrays(task, items) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([np.asarray(task.reader(it.key)) for it in items])
    return images, np.array([it.label for it in items])


def evaluate_mini(model_dir: str | Path | None = None, per_pair: int = 50, seed: int = 12345,
                  tasks: tuple[str, ...] = ("synth", "synth_shift", "synth_conflict", "synth_forget", "synth_faded"),
                  progress: bool = False,
                  threads: int | None = None) -> dict:
    """Zero-shot accuracies (%) of a model on the world, written to `<model_dir>/zero_shot.json` when it is a folder.

    pairs_seen / pairs_held_out: 64-way classification among every shape-colour pair with the prompt
    "a photo of a {colour} {shape}.", on `per_pair` fresh images of each pair in the pretraining world,
    split by whether the pair was shown in pretraining. For each task in `tasks`: test accuracy among all its
    classes, and among its base and new halves (CoOp's split).
    """
    from .backbone import Backbone
    from .data.catalogue import load_task
    from .data.sampling import subsample_classes

    if threads:
        torch.set_num_threads(threads)
    bb = Backbone.from_pretrained(None if model_dir is None else str(model_dir))
    S = synth
    rng = np.random.default_rng(seed)
    pairs = [(s, c) for s in range(len(S.SHAPES)) for c in range(len(S.COLOURS))]
    attrs = S.sample_attributes(per_pair * len(pairs), rng, pairs=pairs)
    attrs[:, :2] = np.repeat(np.asarray(pairs), per_pair, axis=0)
    images = S.render(attrs, rng)
    label = np.repeat(np.arange(len(pairs)), per_pair)
    pred = _zero_shot(bb, images, [S.TEMPLATE.format(S.pair_name(s, c)) for s, c in pairs])
    held = np.array([p in S.HELD_OUT_PAIRS for p in pairs])[label]
    correct = pred == label
    # attribute read-out: did the predicted pair get the colour / the shape right?
    pp = np.asarray(pairs)[pred]
    res: dict = {
        "pairs_seen": round(100 * correct[~held].mean(), 1),
        "pairs_held_out": round(100 * correct[held].mean(), 1),
        "pairs_colour": round(100 * (pp[:, 1] == attrs[:, 1]).mean(), 1),
        "pairs_shape": round(100 * (pp[:, 0] == attrs[:, 0]).mean(), 1),
        "images_per_pair": per_pair,
    }
    for name in tasks:
        task = load_task(name)
        entry = {"classes": len(task.classnames), "template": task.template}
        for which in ("all", "base", "new"):
            t = subsample_classes(task, which)
            x, y = _task_arrays(t, t.test)
            entry[which] = round(100 * (_zero_shot(bb, x, t.prompts()) == y).mean(), 1)
        entry["hm"] = round(2 * entry["base"] * entry["new"] / max(1e-9, entry["base"] + entry["new"]), 1)
        res[name] = entry
    if model_dir is not None and Path(model_dir).is_dir():
        (Path(model_dir) / "zero_shot.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


# ------------------------------------------------------------------------------------------------------------
# Model card


def _median_rate(history: list[dict]) -> float | None:
    """Median steps/s over the logged windows (robust to other jobs briefly sharing the CPU)."""
    rates = [(b["step"] - a["step"]) / (b["seconds"] - a["seconds"])
             for a, b in zip(history, history[1:]) if b["seconds"] > a["seconds"]]
    return float(np.median(rates)) if rates else None


def write_card(model_dir: str | Path) -> str:
    """(Re)write README.md in model_dir from its training.json and zero_shot.json."""
    d = Path(model_dir)
    rec = json.loads((d / "training.json").read_text())
    zs = json.loads((d / "zero_shot.json").read_text()) if (d / "zero_shot.json").exists() else {}
    size_mb = sum(f.stat().st_size for f in d.iterdir() if f.is_file() and f.name != "README.md") / 1e6
    lines = _card_head(rec, size_mb)
    norm = rec.get("normalised_for_finetuning")
    if norm:
        lines += _card_normalised(norm)
    if zs:
        lines += _card_zero_shot(zs, d)
    text = "\n".join(lines + _CARD_LIMITS)
    (d / "README.md").write_text(text)
    return text


def _card_head(rec: dict, size_mb: float) -> list[str]:
    """The card's front matter, architecture, pretraining recipe and command."""
    r = rec["recipe"]
    return [
        "---",
        "library_name: transformers",
        "license: mit",
        "tags: [clip, clipfit, synthetic]",
        "---",
        "",
        "# clipfit mini-clip",
        "",
        "A small CLIP (`transformers.CLIPModel`), pretrained from scratch on clipfit's procedural image-caption",
        "world (`clipfit.data.synth`), so that the project's adaptation methods can be shown to work on a CPU",
        "with no download. It knows nothing about natural images: its world is one coloured object per 32x32",
        "image, described by shape, colour, size, pattern and position.",
        "",
        "## Architecture",
        "",
        f"- Vision: ViT, {synth.IMAGE_SIZE}x{synth.IMAGE_SIZE} images, patch {r['patch']}, width {r['hidden']}, "
        f"{r['layers']} layers, {r['heads']} heads, MLP {4 * r['hidden']}.",
        f"- Text: causal transformer, width {r['hidden']}, {r['layers']} layers, {r['heads']} heads, "
        f"at most {r['max_length']} tokens.",
        f"- Projection {r['proj']}; {rec['parameters']:,} parameters in all; "
        f"{size_mb:.1f} MB on disk (float32 safetensors).",
        "- Tokenizer: `clipfit.tokenizer.build_tokenizer` (one token per vocabulary word, character pieces for any",
        "  other word). Image processor: `CLIPImageProcessor`, size 32, "
        f"mean {list(IMAGE_MEAN)}, std {list(IMAGE_STD)}.",
        "",
        f"Vocabulary ({len(rec['vocabulary'])} words): {', '.join(rec['vocabulary'])}.",
        "",
        "## Pretraining",
        "",
        "Every step draws a fresh batch from the world (shape-colour pairs not held out; size, pattern and",
        "position uniform), each image with a caption that names its shape and a random subset of its other",
        "attributes, e.g. \"a photo of a small red striped circle on the left.\" The loss is CLIP's symmetric",
        "contrastive loss where every caption in the batch that describes an image is a positive for it.",
        "",
        f"- Steps {r['steps']}, batch {r['batch_size']}, seed {r['seed']}; AdamW (betas 0.9/0.98, weight decay "
        f"{r['weight_decay']} on matrices), lr {r['lr']:g} with {r['warmup']} warm-up steps and cosine decay; "
        "gradient clipping at 1; learnable temperature capped at 100.",
        f"- Held out of pretraining ({len(rec['held_out_pairs'])} of 64 shape-colour pairs): "
        f"{', '.join(rec['held_out_pairs'])}.",
        f"- Time: {rec['train_seconds'] / 60:.1f} min wall-clock ({rec['steps_per_second']:.2f} steps/s on average"
        + (f"; median of 50-step windows {_median_rate(rec['history']):.2f} steps/s, i.e. "
           f"{r['steps'] / _median_rate(rec['history']) / 60:.0f} min had the cores been free of other jobs"
           if _median_rate(rec["history"]) else "")
        + f") on {rec['machine']}; final loss (running mean) {rec['final_loss']}."
        + (f" {rec['note']}" if rec.get("note") else ""),
        "",
        "Command:",
        "",
        "```",
        rec["command"],
        "```",
        "",
    ]


def _card_normalised(norm: dict) -> list[str]:
    """What the fine-tuning normalisation did (training.json's `normalised_for_finetuning`)."""
    return [
        "## Normalised for fine-tuning",
        "",
        "After pretraining, two changes that leave every zero-shot prediction as it was (the text features are",
        "equal to float precision) but let the papers' learning rates move the text side of the model",
        "(`clipfit.pretrain.normalise_for_finetuning`; `python -m clipfit.pretrain --normalise MODEL_DIR`):",
        "",
        f"- The text tower's residual stream had an RMS of {norm['text_residual_rms_before']} per dimension after",
        "  its last layer (over the world's class prompts). Everything that writes to it (token and position",
        "  embeddings, each layer's attention output projection and FFN output Linear) is multiplied by",
        f"  {norm['text_residual_scale']:.4f} = 1/RMS and the LayerNorms' eps by its square, which leaves every",
        "  LayerNorm's output unchanged. SGD is not invariant to that scale: before, a step on a text FFN bias",
        "  (what CLIPFit tunes) moved the text features about 20x less than on a unit-scale stream, and at",
        "  CLIPFit's learning rate those biases did not move at all.",
        f"- The logit scale is set to CLIP's {norm['logit_scale']:g} (pretraining ended at "
        f"{norm['logit_scale_before']}). It scales every logit and changes none of their order.",
        "",
    ]


def _card_zero_shot(zs: dict, d: Path) -> list[str]:
    """The zero-shot accuracies (zero_shot.json) and how they were measured."""
    lines = [
        "## Zero-shot accuracy",
        "",
        "Measured by:",
        "",
        "```",
        f"python -m clipfit.pretrain --evaluate {d.as_posix() if not d.is_absolute() else 'MODEL_DIR'}",
        "```",
        "",
        f"64-way, prompt \"a photo of a {{colour}} {{shape}}.\", {zs['images_per_pair']} fresh images per pair:",
        "",
        "| images of | accuracy (%) |",
        "|---|---|",
        f"| pairs seen in pretraining | {zs['pairs_seen']} |",
        f"| held-out pairs | {zs['pairs_held_out']} |",
        f"| (colour right / shape right, all pairs) | {zs['pairs_colour']} / {zs['pairs_shape']} |",
        "",
        "Downstream tasks (test split; base/new = CoOp's class halves, HM = harmonic mean):",
        "",
        "| task | classes | all | base | new | HM |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in zs.items():
        if isinstance(e, dict):
            lines.append(f"| {name} | {e['classes']} | {e['all']} | {e['base']} | {e['new']} | {e['hm']} |")
    lines += [
        "",
        "Chance is 1/64 for the pairs, 1/32 for a task's `all` and 1/16 for its base or new half (1/12 and",
        "1/6 for the 12-class tasks). `synth_shift` renders the same classes on striped",
        "backgrounds, which pretraining never showed: zero-shot stays well above chance but far below the",
        "unshifted task, which leaves room for few-shot adaptation. `synth_conflict`, `synth_forget` and",
        "`synth_faded` name each class by a colour and a shape of which only one is what the class is (see",
        "`clipfit.data.readers.synth_tasks`); `synth_faded` washes the colours out, which costs zero-shot the base",
        "classes (told apart by colour). The numbers are deterministic: the evaluation images come from fixed seeds.",
        "",
    ]
    return lines


_CARD_LIMITS = [
    "## Intended use and limits",
    "",
    "The embedded default model of clipfit (`--model clipfit/mini-clip`), for demonstrations and tests of",
    "adaptation methods on a CPU. It has only seen the synthetic world and its 34-word vocabulary; other words",
    "are spelled out in characters it has never been trained on, and natural images are far outside its",
    "training distribution.",
    "",
]


# ------------------------------------------------------------------------------------------------------------
# Command line


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="folder to save the model in (default: the embedded model's folder)")
    p.add_argument("--steps", type=int, default=PretrainConfig.steps, help="optimisation steps (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=PretrainConfig.batch_size, help="images per step (default %(default)s)")
    p.add_argument("--seed", type=int, default=PretrainConfig.seed, help="seed of the data and the initialisation")
    p.add_argument("--lr", type=float, default=PretrainConfig.lr, help="peak learning rate (default %(default)s)")
    p.add_argument("--threads", type=int, default=PretrainConfig.threads, help="torch CPU threads (default %(default)s)")
    p.add_argument("--text-layers", type=int, default=PretrainConfig.text_layers,
                   help=f"layers of the text tower (default: as many as the image tower's {PretrainConfig.layers})")
    p.add_argument("--no-eval", action="store_true", help="skip the zero-shot evaluation and the model card's numbers")
    p.add_argument("--json", action="store_true", help="print the training record as one JSON object")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `pretrain-mini` on an argparse subparsers object; it calls `run_pretrain(args)`."""
    p = subparsers.add_parser("pretrain-mini", help="pretrain the small embedded CLIP on the synthetic world",
                              description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    p.set_defaults(func=run_pretrain)
    return p


def run_pretrain(args: argparse.Namespace) -> int:
    from .backbone import ASSETS

    out = args.out or str(ASSETS / "mini-clip")
    prog = getattr(args, "prog", None) or "clipfit pretrain-mini"
    cmd = " ".join([prog, f"--out {out}", f"--steps {args.steps}", f"--batch-size {args.batch_size}",
                    f"--seed {args.seed}", f"--threads {args.threads}"] + ([f"--lr {args.lr:g}"] if args.lr != PretrainConfig.lr else [])
                   + ([f"--text-layers {args.text_layers}"] if args.text_layers else []))
    rec = pretrain_mini(out, steps=args.steps, batch_size=args.batch_size, seed=args.seed, lr=args.lr,
                        threads=args.threads, evaluate=not args.no_eval, progress=not args.json, command=cmd,
                        text_layers=args.text_layers)
    if args.json:
        print(json.dumps({k: v for k, v in rec.items() if k != "history"}))
    else:
        print(f"saved to {out} ({rec['parameters']:,} parameters, {rec['train_seconds'] / 60:.1f} min)")
        if "zero_shot" in rec:
            print(json.dumps(rec["zero_shot"], indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m clipfit.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--evaluate", metavar="MODEL_DIR", default=None,
                   help="measure the zero-shot accuracies of a model instead of training one")
    p.add_argument("--write-card", action="store_true", help="with --evaluate: rewrite MODEL_DIR/README.md")
    p.add_argument("--normalise", metavar="MODEL_DIR", default=None,
                   help="apply the fine-tuning normalisation (unit-RMS text residual, logit scale 100) to a saved "
                        "model in place; pretraining applies it by itself")
    _add_arguments(p)
    args = p.parse_args(argv)
    args.prog = "python -m clipfit.pretrain"
    try:
        if args.normalise:
            print(json.dumps(normalise_model_dir(args.normalise), indent=None if args.json else 2))
            return 0
        if args.evaluate:
            res = evaluate_mini(args.evaluate, threads=args.threads)
            if args.write_card:
                write_card(args.evaluate)
            print(json.dumps(res) if args.json else json.dumps(res, indent=2))
            return 0
        return run_pretrain(args)
    except ClipfitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

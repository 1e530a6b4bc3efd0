"""Pretraining smoke test: a few steps of a tiny model, saved and loaded back like any CLIP checkpoint."""
import argparse
import json

import numpy as np
import pytest
import torch

from clipfit import pretrain
from clipfit.backbone import Backbone
from clipfit.data import synth
from clipfit.errors import ClipfitError


def test_contrastive_loss_prefers_matching_pairs():
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    eye = torch.eye(6, dtype=torch.bool)
    good = pretrain.contrastive_loss(x, x, torch.tensor(20.0), eye)
    bad = pretrain.contrastive_loss(x, x.roll(1, 0), torch.tensor(20.0), eye)
    assert good < bad
    # with two identical items, marking them as each other's positives is cheaper than marking a distinct pair
    twins = torch.cat([x[:1], x[:1], x[2:]])
    right, wrong = eye.clone(), eye.clone()
    right[0, 1] = right[1, 0] = True
    wrong[0, 2] = wrong[2, 0] = True
    scale = torch.tensor(20.0)
    assert pretrain.contrastive_loss(twins, twins, scale, right) < pretrain.contrastive_loss(twins, twins, scale, wrong)


def test_lr_schedule_warms_up_then_decays():
    cfg = pretrain.PretrainConfig(steps=100, warmup=10, lr=1.0)
    lrs = [pretrain.lr_at(s, cfg) for s in range(100)]
    assert lrs[0] < lrs[9] == 1.0 and lrs[50] < 1.0 and lrs[-1] < 0.01


def test_pretrain_few_steps_saves_a_loadable_clip(tmp_path):
    rec = pretrain.pretrain_mini(tmp_path, steps=3, batch_size=16, seed=0, threads=1, evaluate=False,
                                 progress=False, hidden=16, layers=1, heads=2, proj=16)
    assert rec["parameters"] > 0 and np.isfinite(rec["final_loss"])
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "training.json").exists()
    assert json.loads((tmp_path / "training.json").read_text())["recipe"]["steps"] == 3

    bb = Backbone.from_pretrained(str(tmp_path))
    assert bb.image_spec.size == 32
    assert bb.model.config.text_config.eos_token_id == 3
    prompts = [synth.TEMPLATE.format(c) for c in ("red circle", "blue square", "green star")]
    t = bb.encode_text(bb.tokenize(prompts))
    images = synth.render(synth.sample_attributes(4, np.random.default_rng(0)), np.random.default_rng(0))
    spec = bb.image_spec
    i = bb.encode_image(pretrain.to_pixels(images, spec.mean, spec.std))
    assert t.shape == (3, 16) and i.shape == (4, 16)
    assert torch.allclose(t.norm(dim=-1), torch.ones(3), atol=1e-5)
    # every vocabulary word is one token
    ids = bb.tokenizer(" ".join(synth.vocabulary()))["input_ids"]
    assert len(ids) == len(synth.vocabulary()) + 2

    # the zero-shot evaluation and the model card run on it (a tiny slice)
    res = pretrain.evaluate_mini(tmp_path, per_pair=1, tasks=())
    assert 0 <= res["pairs_seen"] <= 100
    card = pretrain.write_card(tmp_path)
    assert "Zero-shot" in card and str(res["pairs_seen"]) in card


def test_add_parser_registers_pretrain_mini():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    pretrain.add_parser(sub)
    args = parser.parse_args(["pretrain-mini", "--out", "x", "--steps", "5", "--batch-size", "8", "--seed", "3",
                              "--threads", "1"])
    assert (args.out, args.steps, args.batch_size, args.seed, args.threads) == ("x", 5, 8, 3, 1)
    assert args.func is pretrain.run_pretrain
    assert args.text_layers == 0 and parser.parse_args(["pretrain-mini", "--text-layers", "8"]).text_layers == 8


def test_text_layers_deepen_only_the_text_tower():
    cfg = pretrain.PretrainConfig(hidden=16, layers=1, text_layers=3, heads=2, proj=16)
    model, _, _ = pretrain.build_model(cfg)
    assert len(model.text_model.encoder.layers) == 3 and len(model.vision_model.encoder.layers) == 1
    same, _, _ = pretrain.build_model(pretrain.PretrainConfig(hidden=16, layers=2, heads=2, proj=16))
    assert len(same.text_model.encoder.layers) == len(same.vision_model.encoder.layers) == 2
    with pytest.raises(ClipfitError, match="--text-layers -1"):
        pretrain.pretrain_mini("unused", steps=1, text_layers=-1)


def test_normalise_for_finetuning_keeps_the_function_and_reaches_unit_rms(tiny_clip):
    import math

    import torch

    from clipfit.backbone import Backbone

    before, after = Backbone.from_pretrained(tiny_clip), Backbone.from_pretrained(tiny_clip)
    with torch.no_grad():  # a residual stream far from unit scale, as pretraining left mini-clip's
        for layer in after.model.text_model.encoder.layers:
            layer.mlp.fc2.weight.mul_(30.0)
            layer.mlp.fc2.bias.add_(1.0)
        before.model.load_state_dict(after.model.state_dict())
    done = pretrain.normalise_for_finetuning(after.model, after.tokenizer)
    assert done["text_residual_rms_before"] > 2 and done["logit_scale"] == 100.0
    tok = before.tokenize(["a photo of a red circle.", "the green square", "blue"])
    with torch.no_grad():
        ref, got = before.encode_text(tok), after.encode_text(tok)
        assert torch.allclose(ref, got, atol=1e-5)  # the same text features: nothing a prediction sees changed
        assert float(after.logit_scale) == pytest.approx(100.0)
        # the residual stream is now at unit RMS, so a bias step moves the features ~RMS times more than before
        again = pretrain.normalise_for_finetuning(after.model, after.tokenizer)
    assert again["text_residual_rms_before"] == pytest.approx(1.0, rel=1e-3)
    expected_eps = before.model.config.text_config.layer_norm_eps * (done["text_residual_scale"] * again["text_residual_scale"]) ** 2
    assert math.isclose(after.model.config.text_config.layer_norm_eps, expected_eps, rel_tol=1e-6)

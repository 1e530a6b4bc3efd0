"""The LayerNorm tuning paper's methods (LayerNorm tuning, prompt, adapter, compacter, linear probe and their LayerNorm combinations),
the logistic-regression probe, BitFit, full fine-tuning and zero-shot templates, on a tiny random CLIP."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from clipfit.backbone import Backbone, parameter_group
from clipfit.cli import main
from clipfit.data.catalogue import load_task
from clipfit.engine.run import RunSpec, eval_run, init_weights, load_run, train_run
from clipfit.errors import ClipfitError
from clipfit.io import load_tensors
from clipfit.method import METHODS, build_method
from clipfit.method.prompt import encode_text_embeds
from clipfit.method.zeroshot import IMAGENET_TEMPLATES, ZeroShotConfig
from conftest import set_args

FAST = {"epochs": 2, "batch_size": 4, "warmup_epochs": 0}
P = "backbone.model."


def _spec(tiny_clip, tiny_folder, method, sets=None, **kw):
    kw = {"shots": 2, "seed": 1, **kw}
    return RunSpec(dataset=f"imagefolder:{tiny_folder}", model=tiny_clip, method=method, settings={**FAST, **(sets or {})},
                   **kw)


def _groups(model, *groups):
    return {n for g in groups for n in parameter_group(model, g)}


def _images(tiny_folder, n=4):
    from PIL import Image

    from clipfit.backbone import ImageSpec
    from clipfit.data.transforms import eval_transform

    tf = eval_transform(ImageSpec(size=32, mean=(0.5,) * 3, std=(0.25,) * 3, resize=32))
    return torch.stack([tf(Image.open(f"{tiny_folder}/{c}/0{i}.png").convert("RGB"))
                        for c in ("red", "green", "blue") for i in range(n // 2 + 1)])


def _logits(method, x):
    with torch.no_grad():
        return method.logits(method.image_features(x), method.text_features())


@pytest.mark.parametrize("cli_args, expected", [
    (["layernorm"], 65536), (["prompt"], 4096), (["adapter"], 301344), (["compacter"], 19360),
    (["linear_probe", "--classes", "1"], 769), (["linear_probe", "--classes", "10"], 7690),
    (["logreg_probe", "--classes", "1"], 513), (["layernorm", "--set", "tower=vision"], 39936),
    (["layernorm", "--set", "tower=text"], 25600), (["prompt+ln"], 65536 + 4096), (["adapter+ln"], 65536 + 301344),
    (["compacter+ln"], 65536 + 19360), (["linear_probe+ln", "--classes", "1"], 39936 + 769),
    (["bitfit"], 171008), (["bitfit", "--set", "tower=text"], 68096), (["full"], 149620737),
    (["llu"], 2 * (512 * 512 + 512)), (["zeroshot"], 0),
])
def test_params_counts_for_vit_b16(cli_args, expected, capsys):
    assert main(["params", *cli_args, "--arch", "ViT-B/16"]) == 0
    assert capsys.readouterr().out.strip() == str(expected)


def test_tuned_weights_are_applied_on_reload(tiny_clip, tiny_folder, tmp_path):
    """Adapters start near the identity: after training (large lr) the reloaded logits differ from zero-shot, and
    removing the adapters' hooks gives plain CLIP back."""
    out = tmp_path / "run"
    train_run(_spec(tiny_clip, tiny_folder, "adapter", {"lr": 0.05}), out, progress=False)
    run = load_run(out)
    zs = build_method("zeroshot", Backbone.from_pretrained(tiny_clip), run.method.classnames, run.method.templates)
    x = _images(tiny_folder)
    assert not torch.allclose(_logits(run.method, x), _logits(zs, x))
    run.method.remove()
    assert torch.allclose(_logits(run.method, x), _logits(zs, x), atol=1e-5)


def test_prompt_text_forward_matches_transformers(tiny_clip):
    bb = Backbone.from_pretrained(tiny_clip)
    tok = bb.tokenize(["red", "a photo of the green", "bluish thing"])  # padded, and with character fallback
    emb = bb.model.text_model.embeddings.token_embedding(tok["input_ids"])
    with torch.no_grad():
        ref = bb.encode_text(tok, normalize=False)
        got = encode_text_embeds(bb, emb, tok["attention_mask"])
    assert torch.allclose(ref, got, atol=1e-6)


def test_prompt_places_context_before_the_class_name(tiny_clip, tiny_folder):
    task = load_task(f"imagefolder:{tiny_folder}")
    bb = Backbone.from_pretrained(tiny_clip)
    cls = METHODS.get("prompt").cls
    m = build_method("prompt", bb, task.classnames, task.template, cls.Config(ctx_init="a photo of the"))
    assert m.ctx.shape == (8, bb.model.text_model.config.hidden_size)
    ids = bb.tokenizer(["a photo of the"], add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    assert torch.equal(m.ctx[-len(ids):].detach(), bb.model.text_model.embeddings.token_embedding(ids).detach())
    assert not m.uses_dataset_template
    # the learned context reaches the text features, the class names are not templated
    t0 = m.text_features().detach()
    with torch.no_grad():
        m.ctx.add_(0.5)
    assert not torch.allclose(t0, m.text_features())
    assert m._ids.shape[1] <= bb.model.text_model.config.max_position_embeddings  # context rows included


def test_two_stage_run_starts_from_first_stage_layernorms(tiny_clip, tiny_folder, tmp_path):
    stage1, stage2 = tmp_path / "ln", tmp_path / "prompt"
    train_run(_spec(tiny_clip, tiny_folder, "layernorm", {"lr": 0.05}), stage1, progress=False)
    ln = {k.removeprefix(P): v for k, v in load_tensors(stage1 / "tuned.safetensors").items()}
    pristine = dict(Backbone.from_pretrained(tiny_clip).model.named_parameters())
    assert any(not torch.equal(v, pristine[k]) for k, v in ln.items())

    # the engine reads the first stage's backbone weights; the second method copies them in before anything trains
    task = load_task(f"imagefolder:{tiny_folder}")
    bb2 = Backbone.from_pretrained(tiny_clip)
    m = build_method("prompt", bb2, task.classnames, task.template, init_weights=init_weights(str(stage1), bb2))
    params = dict(m.backbone.model.named_parameters())
    assert all(torch.equal(params[k], v) for k, v in ln.items())
    assert all(torch.equal(params[k], pristine[k]) for k in params if k not in ln)

    bb = Backbone.from_pretrained(tiny_clip)
    train_run(_spec(tiny_clip, tiny_folder, "prompt", {"init_from": str(stage1)}), stage2, progress=False, backbone=bb)
    after = dict(bb.model.named_parameters())
    assert all(torch.equal(after[k], v) for k, v in ln.items())  # frozen in stage 2
    assert all(torch.equal(after[k], pristine[k]) for k in after if k not in ln)
    tuned = load_tensors(stage2 / "tuned.safetensors")
    assert "ctx" in tuned and {k.removeprefix(P) for k in tuned if k != "ctx"} == set(ln)

    x = _images(tiny_folder)
    logits = _logits(load_run(stage2).method, x)
    shutil.rmtree(stage1)  # the second run carries the first stage's weights: it reloads without it
    again = load_run(stage2)
    assert torch.equal(logits, _logits(again.method, x))
    # but training from a missing first stage is an error, not a silent start from pre-trained weights
    with pytest.raises(ClipfitError, match="init_from"):
        train_run(_spec(tiny_clip, tiny_folder, "prompt", {"init_from": str(stage1)}), tmp_path / "x", progress=False)


def test_init_from_a_run_without_backbone_weights_is_refused(tiny_clip, tiny_folder, tmp_path):
    train_run(_spec(tiny_clip, tiny_folder, "prompt"), tmp_path / "p", progress=False)
    with pytest.raises(ClipfitError, match="no weights of the backbone"):
        train_run(_spec(tiny_clip, tiny_folder, "adapter", {"init_from": str(tmp_path / "p")}), tmp_path / "a", progress=False)


def test_linear_probe_is_class_specific(tiny_clip, tiny_folder, tmp_path):
    out = tmp_path / "run"
    train_run(_spec(tiny_clip, tiny_folder, "linear_probe", {"lr": 0.05}, subsample="base"), out, progress=False)
    run = load_run(out)
    assert not run.method.class_agnostic and not run.method.mergeable
    assert run.method.head.weight.shape == (2, Backbone.from_pretrained(tiny_clip).model.vision_model.config.hidden_size)
    with pytest.raises(ClipfitError, match="cannot classify"):
        eval_run(out, subsample="new", progress=False, loaded=run)


def test_logreg_probe_searches_c_on_validation(tiny_clip, tiny_folder, tmp_path):
    out = tmp_path / "run"
    m = train_run(_spec(tiny_clip, tiny_folder, "logreg_probe", {"search_steps": 2}), out, progress=False)
    log = (out / "log.txt").read_text().splitlines()
    assert len(log) == 7 + 2 * 2 and all(line.startswith("C=") for line in log)
    assert m["val_accuracy"] is not None
    # a fixed C skips the search
    train_run(_spec(tiny_clip, tiny_folder, "logreg_probe", {"C": 0.5}), tmp_path / "fixed", progress=False)
    assert (tmp_path / "fixed" / "log.txt").read_text().split() == ["C=0.5"]


def test_logreg_probe_two_classes(tiny_clip, tiny_folder, tmp_path):
    m = train_run(_spec(tiny_clip, tiny_folder, "logreg_probe", subsample="base"), tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    assert len(run.method.classnames) == 2
    assert m["test"]["base"]["accuracy"] == pytest.approx(eval_run(tmp_path / "run", progress=False)["accuracy"])


def test_zeroshot_template_choices(tiny_clip, tiny_folder, tmp_path):
    task = load_task(f"imagefolder:{tiny_folder}")
    bb = Backbone.from_pretrained(tiny_clip)
    default = build_method("zeroshot", bb, task.classnames, task.template)
    assert default.templates == [task.template] and default.uses_dataset_template
    ens = build_method("zeroshot", bb, task.classnames, task.template, ZeroShotConfig(templates="imagenet80"))
    assert ens.templates == IMAGENET_TEMPLATES and len(ens.templates) == 80 and not ens.uses_dataset_template
    two = build_method("zeroshot", bb, task.classnames, task.template,
                       ZeroShotConfig(templates="a photo of a {}.|a sketch of a {}."))
    assert two.templates == ["a photo of a {}.", "a sketch of a {}."]
    # features averaged over templates: the normalised mean of the per-template features
    singles = [build_method("zeroshot", bb, task.classnames, t).text_features() for t in two.templates]
    assert torch.allclose(two.text_features(), torch.nn.functional.normalize(singles[0] + singles[1], dim=-1), atol=1e-6)
    with pytest.raises(ClipfitError, match="no '{}'"):
        build_method("zeroshot", bb, task.classnames, task.template, ZeroShotConfig(templates="a photo"))
    # a run records the 80 templates and reloads with them
    train_run(_spec(tiny_clip, tiny_folder, "zeroshot", {"templates": "imagenet80"}), tmp_path / "zs", progress=False)
    assert json.loads((tmp_path / "zs" / "config.json").read_text())["templates"] == IMAGENET_TEMPLATES
    assert load_run(tmp_path / "zs").method.templates == IMAGENET_TEMPLATES


def test_commands_accept_the_new_methods(tiny_clip, tiny_folder, tmp_path, capsys):
    base = ["--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "2", "--quiet",
            *set_args(FAST)]
    for method in ("compacter+ln", "linear_probe"):
        out = tmp_path / method
        assert main(["train", *base, "--method", method, "--out", str(out), "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert main(["eval", str(out), "--json", "--quiet"]) == 0
        assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(res["test"]["all"]["accuracy"])
    assert main(["train", *base, "--method", "prompt", "--set", "ablation=none", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown setting" in capsys.readouterr().err
    assert main(["methods", "--details"]) == 0
    listing = capsys.readouterr().out
    for name in ("layernorm", "prompt+ln", "adapter", "compacter", "linear_probe", "logreg_probe", "llu", "bitfit", "full"):
        assert f"\n{name} " in listing or listing.startswith(f"{name} ")

"""CLIP-Adapter, Tip-Adapter, Tip-Adapter-F and CLIP-LoRA: parameter counts, formulas checked by hand, what trains,
reloading, merging, recipes, and that the test split is read only after every choice is made."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from clipfit.backbone import Backbone
from clipfit.cli import main
from clipfit.config import TrainConfig
from clipfit.data.catalogue import load_task
from clipfit.engine import run as run_module
from clipfit.engine.loop import FeatureSource, lr_at, make_optimizer
from clipfit.engine.run import RunSpec, load_run, resolve_configs, train_run
from clipfit.engine.use import export_merged
from clipfit.errors import ClipfitError
from clipfit.io import load_tensors
from clipfit.method import METHODS, build_method
from clipfit.method.tip_adapter import cache_keys, cache_logits, search_grid
from conftest import set_args

FAST = {"batch_size": 4, "warmup_epochs": 0}
STEPS = {"clip_adapter": {"epochs": 2}, "clip_adapter+ln": {"epochs": 2}, "tip_adapter": {"views": 2},
         "tip_adapter_f": {"epochs": 2, "views": 2}, "clip_lora": {"iterations": 3}}


def _spec(tiny_clip, tiny_folder, method, sets=None, **kw):
    kw = {"shots": 2, "seed": 1, **kw}
    return RunSpec(dataset=f"imagefolder:{tiny_folder}", model=tiny_clip, method=method,
                   settings={**FAST, **STEPS.get(method, {}), **(sets or {})}, **kw)


def _images(tiny_folder):
    from PIL import Image

    from clipfit.backbone import ImageSpec
    from clipfit.data.transforms import eval_transform

    tf = eval_transform(ImageSpec(size=32, mean=(0.5,) * 3, std=(0.25,) * 3, resize=32))
    return torch.stack([tf(Image.open(f"{tiny_folder}/{c}/0{i}.png").convert("RGB"))
                        for c in ("red", "green", "blue") for i in range(3)])


def _logits(method, x):
    with torch.no_grad():
        return method.logits(method.image_features(x), method.text_features())


def _method(tiny_clip, tiny_folder, name, **cfg):
    task = load_task(f"imagefolder:{tiny_folder}")
    entry = METHODS.get(name)
    mcfg = entry.config()
    for k, v in cfg.items():
        setattr(mcfg, k, v)
    return build_method(name, Backbone.from_pretrained(tiny_clip), task.classnames, task.template, mcfg)


# -- counts -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cli_args, expected", [
    (["clip_adapter"], 2 * 512 * 128),  # 131,072
    (["clip_adapter+ln"], 131072 + 39936),  # + the image encoder's LayerNorms
    (["clip_lora"], 12 * 3 * 2 * (512 + 512) + 12 * 3 * 2 * (768 + 768)),  # 73,728 + 110,592 = 184,320
    (["clip_lora", "--set", "encoder=text"], 73728),
    (["clip_lora", "--set", "targets=q,v", "--set", "r=4"], 2 * 184320 * 2 // 3),
    (["tip_adapter"], 0),
    (["tip_adapter_f"], 10 * 16 * 512),  # N x K x D
    (["tip_adapter_f", "--classes", "100", "--shots", "4"], 100 * 4 * 512),
])
def test_params_counts_for_vit_b16(cli_args, expected, capsys):
    assert main(["params", *cli_args, "--arch", "ViT-B/16"]) == 0
    assert capsys.readouterr().out.strip() == str(expected)


# -- what trains, reloading, the commands ------------------------------------------------------------------------

def test_commands_train_eval_predict_export(tiny_clip, tiny_folder, tmp_path, capsys):
    base = ["--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "2", "--quiet"]
    img = f"{tiny_folder}/red/00.png"
    for method in ("clip_adapter", "tip_adapter", "tip_adapter_f", "clip_lora"):
        out = tmp_path / method
        sets = set_args({**FAST, **STEPS[method]})
        assert main(["train", *base, *sets, "--method", method, "--out", str(out), "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert main(["eval", str(out), "--json", "--quiet"]) == 0
        assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(res["test"]["all"]["accuracy"])
        assert main(["predict", str(out), img, "--topk", "2", "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)["predictions"][0]["top"]) == 2
        code = main(["export", str(out), "--merged", str(tmp_path / f"{method}-merged")])
        assert code == (0 if method == "clip_lora" else 2)
        capsys.readouterr()
    # the cache holds one-hot labels of the training classes: other classes are refused, CLIP-Adapter takes them
    assert main(["predict", str(tmp_path / "tip_adapter"), img, "--classes", "red,blue"]) == 2
    assert "its own classes" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "clip_adapter"), img, "--classes", "red,blue", "--json"]) == 0
    assert main(["methods", "--details"]) == 0
    listing = capsys.readouterr().out
    for name in ("clip_adapter", "clip_adapter+ln", "tip_adapter", "tip_adapter_f", "clip_lora"):
        assert f"\n{name} " in listing
    for recipe in ("recipe clip_adapter:", "recipe tip_adapter_f:", "recipe clip_lora:", "scaling_rule = 'sqrt_r'"):
        assert recipe in listing


def test_grids_run_every_method(tiny_clip, tiny_folder, tmp_path):
    import clipfit

    methods = ["clip_adapter", "tip_adapter", "tip_adapter_f", "clip_lora"]
    res = clipfit.base2new(tiny_clip, dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "b2n", methods=methods,
                           seeds=[1], shots=2, progress=False, epochs=1, iterations=2, views=2, **FAST)
    rows = {r["method"]: r for r in res.rows()}
    assert rows["tip_adapter"]["new"] is None and rows["tip_adapter_f"]["new"] is None  # class-specific cache
    assert rows["clip_adapter"]["new"] is not None and rows["clip_lora"]["new"] is not None
    res = clipfit.fewshot(tiny_clip, dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "fs", methods=methods,
                          seeds=[1], shots=2, progress=False, epochs=1, iterations=2, views=2, **FAST)
    assert all(0 <= r["accuracy"] <= 100 for r in res.rows())


# -- CLIP-Adapter ----------------------------------------------------------------------------------------------

def test_clip_adapter_alpha_zero_is_zero_shot_exactly_and_reads_the_unnormalised_feature(tiny_clip, tiny_folder):
    x = _images(tiny_folder)
    zs = _method(tiny_clip, tiny_folder, "zeroshot")
    m = _method(tiny_clip, tiny_folder, "clip_adapter", alpha=0.0)
    assert torch.equal(_logits(m, x), _logits(zs, x))
    m = _method(tiny_clip, tiny_folder, "clip_adapter", alpha=0.3)
    with torch.no_grad():
        raw = m.backbone.encode_image(x, normalize=False)
        assert not torch.allclose(raw.norm(dim=-1), torch.ones(len(x)))  # the residual mixes unnormalised features
        w1, w2 = m.adapter[0].weight, m.adapter[2].weight
        mixed = 0.3 * torch.relu(torch.relu(raw @ w1.t()) @ w2.t()) + 0.7 * raw
        want = m.backbone.logit_scale * F.normalize(mixed, dim=-1) @ m.text_features().t()
        assert torch.allclose(_logits(m, x), want, atol=1e-5)
        assert not torch.allclose(_logits(m, x), _logits(zs, x), atol=1e-3)
    assert m.adapter[0].weight.shape == (8, 32) and m.adapter[0].bias is None  # D -> D/4 -> D, no bias
    assert m.trains_on_features and not _method(tiny_clip, tiny_folder, "clip_adapter+ln").trains_on_features


def test_feature_source_draws_one_view_per_epoch(tiny_clip, tiny_folder):
    m = _method(tiny_clip, tiny_folder, "clip_adapter", views=3)
    n = 5
    feats = torch.arange(3.0).repeat_interleave(n)[:, None].repeat(1, 4)  # view-major: view v is all v
    labels = torch.arange(n).repeat(3)
    src = FeatureSource(m, (feats, labels), None, TrainConfig(batch_size=2), seed=0, device=torch.device("cpu"))
    assert src.n_batches == 2  # an epoch is one pass over the 5 images (the last batch dropped), not over 15 views
    for epoch in range(4):
        xs = torch.cat([x for x, _ in src.batches()])
        assert set(xs.flatten().tolist()) == {float(epoch % 3)}


# -- Tip-Adapter ----------------------------------------------------------------------------------------------

def test_tip_adapter_formula_on_the_2d_example():
    f = torch.tensor([[0.6, 0.8]])
    eye = torch.eye(2)
    z = 100.0 * f @ eye.t() + cache_logits(f, eye, eye, alpha=1.0, beta=2.0)
    # affinity (0.6, 0.8); cache (exp(-0.8), exp(-0.4)) = (0.44933, 0.67032)
    assert z[0].tolist() == pytest.approx([60.44933, 80.67032], abs=1e-5)


def test_tip_adapter_search_grid_end_points():
    betas, alphas = search_grid(7, 200), search_grid(3, 20)
    assert len(betas) == 200 and len(alphas) == 20
    assert betas[0] == pytest.approx(0.1) and betas[1] == pytest.approx(0.1345)
    assert betas[-1] == pytest.approx(6.9655) and max(betas) < 7  # 7 itself is never tried
    assert alphas[-1] == pytest.approx(2.855)


def test_tip_adapter_keys_average_raw_features_then_normalise(tiny_clip, tiny_folder):
    raw = torch.tensor([[3.0, 0.0], [0.0, 1.0],  # view 1 of images 1, 2
                        [1.0, 1.0], [0.0, 2.0]])  # view 2 of images 1, 2
    keys = cache_keys(raw, views=2)
    assert torch.allclose(keys[0], F.normalize(torch.tensor([2.0, 0.5]), dim=0))  # mean of raw, then normalised
    mean_of_normalised = F.normalize(F.normalize(raw, dim=-1).reshape(2, 2, 2).mean(0), dim=-1)
    assert not torch.allclose(keys[0], mean_of_normalised[0], atol=1e-3)  # the norms differ: the order matters
    same = torch.tensor([[2.0, 1.0]]).repeat(3, 1)  # identical views: the key is the normalised feature
    assert torch.allclose(cache_keys(same, views=3), F.normalize(same[:1], dim=-1))
    # the method builds its cache the same way from view-major features, one-hot values, one key per image
    m = _method(tiny_clip, tiny_folder, "tip_adapter", views=2)
    d = m.dim
    feats = torch.randn(2 * 6, d) * torch.linspace(0.5, 3.0, 12)[:, None]
    labels = torch.tensor([0, 0, 1, 1, 2, 2]).repeat(2)
    m.on_features(feats, labels)
    assert torch.allclose(m.keys, cache_keys(feats, 2)) and m.keys.shape == (6, d)
    assert torch.equal(m.values, F.one_hot(labels[:6], 3).float())


def test_tip_adapter_logits_are_zero_shot_plus_the_cache(tiny_clip, tiny_folder):
    x = _images(tiny_folder)
    zs = _method(tiny_clip, tiny_folder, "zeroshot")
    m = _method(tiny_clip, tiny_folder, "tip_adapter", alpha=1.5, beta=3.0, views=0)
    assert torch.equal(_logits(m, x), _logits(zs, x))  # no cache yet: zero-shot
    with torch.no_grad():
        raw = m.backbone.encode_image(x, normalize=False)
    m.on_features(raw, torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2]))
    f = F.normalize(raw, dim=-1)
    s = m.backbone.logit_scale  # the model's own scale, not a literal 100
    assert float(s) != pytest.approx(100.0)
    want = s * f @ zs.text_features().t() + 1.5 * torch.exp(-3.0 * (1 - f @ f.t())) @ m.values
    assert torch.allclose(_logits(m, x), want.detach(), atol=1e-4)


def test_tip_adapter_search_picks_the_first_best_on_validation(tiny_clip, tiny_folder):
    m = _method(tiny_clip, tiny_folder, "tip_adapter", views=0, alpha_steps=4, beta_steps=5, alpha_max=4.0,
                beta_max=6.0)
    x = _images(tiny_folder)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    with torch.no_grad():
        raw = m.backbone.encode_image(x, normalize=False)
    m.on_features(raw[::3], y[::3])  # one cached image per class
    chosen = m.search_alpha_beta(raw, y)
    assert (float(m.beta), float(m.alpha)) == (chosen["beta"], chosen["alpha"])  # set on the method
    scores = {}
    for b in search_grid(6.0, 5):
        for a in search_grid(4.0, 4):
            m.alpha.fill_(a)
            m.beta.fill_(b)
            scores[(b, a)] = float((_logits(m, x).argmax(-1) == y).float().mean()) * 100
    first_best = next(k for k, v in scores.items() if v == max(scores.values()))
    assert (chosen["beta"], chosen["alpha"]) == pytest.approx(first_best)
    assert chosen["val_accuracy"] == pytest.approx(max(scores.values()))
    assert len(set(scores.values())) > 1  # the grid matters on this data


class _GuardedReader:
    """Raises on a test image until the final evaluation opens it (counts the reads after that)."""

    def __init__(self, reader, test_keys):
        self.reader, self.test_keys, self.open, self.test_reads = reader, set(test_keys), False, 0

    def __call__(self, key):
        if key in self.test_keys:
            if not self.open:
                raise AssertionError(f"test image {key} read before the final evaluation")
            self.test_reads += 1
        return self.reader(key)


@pytest.mark.parametrize("method", ["tip_adapter", "tip_adapter_f"])
def test_tip_adapter_chooses_on_validation_and_reads_test_only_at_the_end(method, tiny_clip, tiny_folder, tmp_path,
                                                                          monkeypatch):
    guard = {}
    real_prepare, real_evaluate = run_module.prepare_task, run_module.evaluate

    def prepare(spec):
        task = real_prepare(spec)
        guard["reader"] = _GuardedReader(task.reader, [it.key for it in task.test])
        assert not guard["reader"].test_keys & {it.key for it in task.train + task.val}
        return task.with_splits(reader=guard["reader"])

    def evaluate(method_, task, items, *a, **kw):  # train_run's final test evaluation: reading test is allowed now
        assert items == task.test
        guard["reader"].open = True
        return real_evaluate(method_, task, items, *a, **kw)

    monkeypatch.setattr(run_module, "prepare_task", prepare)
    monkeypatch.setattr(run_module, "evaluate", evaluate)
    out = tmp_path / "run"
    m = train_run(_spec(tiny_clip, tiny_folder, method, {"alpha_steps": 3, "beta_steps": 4}), out, progress=False)
    assert guard["reader"].test_reads == m["test"]["all"]["n"] > 0  # read once, at the end
    chosen = m["selected"]
    assert chosen["beta"] in search_grid(12.0, 4) and chosen["alpha"] in search_grid(10.0, 3)
    assert m["val_accuracy"] is not None
    loaded = load_run(out).method
    assert (float(loaded.alpha), float(loaded.beta)) == pytest.approx((chosen["alpha"], chosen["beta"]))


def test_tip_adapter_without_validation_keeps_the_initial_alpha_beta(tiny_clip, tiny_folder):
    m = _method(tiny_clip, tiny_folder, "tip_adapter", alpha=1.17, beta=1.0)
    assert m.search_alpha_beta(None, None) == {"alpha": 1.17, "beta": 1.0, "val_accuracy": None}


def test_tip_adapter_f_trains_keys_initialised_from_the_cache(tiny_clip, tiny_folder, tmp_path):
    tip = train_run(_spec(tiny_clip, tiny_folder, "tip_adapter"), tmp_path / "tip", progress=False)
    cache = load_tensors(tmp_path / "tip" / "tuned.safetensors")["keys"]
    assert tip["trainable_parameters"] == 0
    # at lr 0 the trainable keys stay Tip-Adapter's cache (same images, views and seed)
    train_run(_spec(tiny_clip, tiny_folder, "tip_adapter_f", {"lr": 0.0}), tmp_path / "f0", progress=False)
    assert torch.equal(load_tensors(tmp_path / "f0" / "tuned.safetensors")["keys"], cache)
    m = train_run(_spec(tiny_clip, tiny_folder, "tip_adapter_f", {"lr": 0.01, "epochs": 3}), tmp_path / "f",
                  progress=False)
    keys = load_tensors(tmp_path / "f" / "tuned.safetensors")["keys"]
    assert m["trainable_parameters"] == 3 * 2 * 32 == keys.numel()  # N x K x D
    assert json.loads((tmp_path / "f" / "config.json").read_text())["trainable_parameters"] == keys.numel()
    assert not torch.allclose(keys, cache, atol=1e-4)
    assert keys.norm(dim=-1).sub(1).abs().max() > 1e-4  # not re-normalised while training
    with pytest.raises(ClipfitError, match="layernorm"):
        _method(tiny_clip, tiny_folder, "tip_adapter_f", layernorm=True)


# -- CLIP-LoRA -------------------------------------------------------------------------------------------------

def test_clip_lora_starts_as_zero_shot_exactly(tiny_clip, tiny_folder):
    x = _images(tiny_folder)
    zs = _method(tiny_clip, tiny_folder, "zeroshot")
    m = _method(tiny_clip, tiny_folder, "clip_lora")
    assert all(torch.equal(b.B, torch.zeros_like(b.B)) for _, b in m._sites)
    assert all(b.A.abs().sum() > 0 for _, b in m._sites)
    assert torch.equal(_logits(m, x), _logits(zs, x))
    m.train()  # dropout on the branch does not matter while B = 0
    assert torch.equal(_logits(m, x), _logits(zs, x))
    assert len(m._sites) == 2 * 2 * 3  # two towers x two layers x q, k, v


@pytest.mark.parametrize("rule, scale", [("sqrt_r", 1 / math.sqrt(2)), ("r", 0.5)])
def test_clip_lora_update_is_w_x_plus_s_b_a_x(rule, scale, tiny_clip, tiny_folder):
    m = _method(tiny_clip, tiny_folder, "clip_lora", scaling_rule=rule).eval()
    torch.manual_seed(0)
    attn = m.backbone.model.vision_model.encoder.layers[1].self_attn
    branch = m.lora["vision"][1]["q"]
    with torch.no_grad():
        branch.A.normal_()
        branch.B.normal_()
    h = torch.randn(3, 5, attn.q_proj.in_features)
    with torch.no_grad():
        got = attn.q_proj(h)
        want = h @ attn.q_proj.weight.t() + attn.q_proj.bias + scale * h @ (branch.B @ branch.A).t()
    assert branch.scale == pytest.approx(scale)
    assert torch.allclose(got, want, atol=1e-5)
    with torch.no_grad():  # the output projection is not adapted by default
        assert torch.equal(attn.out_proj(h), F.linear(h, attn.out_proj.weight, attn.out_proj.bias))
    assert set(m.lora["vision"][1]) == {"q", "k", "v"}


def test_clip_lora_merged_export_computes_the_same_logits(tiny_clip, tiny_folder, tmp_path):
    out = tmp_path / "run"
    train_run(_spec(tiny_clip, tiny_folder, "clip_lora", {"lr": 0.05, "iterations": 4}), out, progress=False)
    run = load_run(out)
    assert any(b.B.abs().sum() > 0 for _, b in run.method._sites)
    x = _images(tiny_folder)
    ours = _logits(run.method, x)
    merged = tmp_path / "merged"
    export_merged(out, merged)
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(merged).eval()
    tok = run.method._tokens[0]
    with torch.no_grad():
        theirs = model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"], pixel_values=x).logits_per_image
    assert torch.allclose(theirs, ours, atol=1e-4)
    plain = CLIPModel.from_pretrained(tiny_clip).eval()
    with torch.no_grad():
        zs = plain(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"], pixel_values=x).logits_per_image
    assert not torch.allclose(theirs, zs, atol=1e-3)  # the export carries the update
    from PIL import Image
    from transformers import pipeline

    from clipfit.engine.use import predict_images

    img = f"{tiny_folder}/green/01.png"
    clf = pipeline("zero-shot-image-classification", model=str(merged), device="cpu")
    got = {g["label"]: g["score"] for g in clf(Image.open(img), candidate_labels=run.method.classnames,
                                                 hypothesis_template=run.method.templates[0])}
    ours_p = {t["class"]: t["probability"] for t in predict_images(run, [img], topk=3)[0]["top"]}
    assert got == pytest.approx(ours_p, abs=1e-3)
    # the merged method itself computes the same (hooks removed, W + s B A in place)
    run.method.merge_into_backbone()
    assert torch.allclose(_logits(run.method, x), ours, atol=1e-4)


def test_non_mergeable_methods_refuse_export(tiny_clip, tiny_folder, tmp_path):
    train_run(_spec(tiny_clip, tiny_folder, "clip_adapter"), tmp_path / "run", progress=False)
    with pytest.raises(ClipfitError, match="cannot be merged"):
        export_merged(tmp_path / "run", tmp_path / "merged")


# -- recipes --------------------------------------------------------------------------------------------------

def _configs(method, dataset="eurosat", shots=16, protocol="fewshot", **settings):
    return resolve_configs(RunSpec(dataset=dataset, method=method, shots=shots, protocol=protocol, settings=settings))


def test_recipes():
    mcfg, tcfg = _configs("clip_lora", shots=4)
    assert (tcfg.optimizer, tcfg.lr, tcfg.weight_decay, tcfg.batch_size) == ("adamw", 2e-4, 0.01, 32)
    assert (tcfg.iterations, tcfg.schedule_unit, tcfg.min_lr, tcfg.select) == (2000, "step", 1e-6, "last")
    assert (mcfg.r, mcfg.alpha, mcfg.dropout, mcfg.scaling_rule) == (2, 1.0, 0.25, "sqrt_r")
    assert _configs("clip_lora", shots=16)[1].iterations == 8000
    assert _configs("clip_lora", shots=4, iterations=10)[1].iterations == 10  # overridable

    mcfg, tcfg = _configs("tip_adapter_f")
    assert (tcfg.optimizer, tcfg.lr, tcfg.adam_eps, tcfg.batch_size, tcfg.epochs) == ("adamw", 1e-3, 1e-4, 256, 100)
    assert (tcfg.schedule_unit, tcfg.crop_scale, mcfg.views) == ("step", 0.5, 10)
    mcfg, tcfg = _configs("tip_adapter_f", dataset="textures")
    assert tcfg.epochs == 20 and (mcfg.beta_max, mcfg.alpha_max, mcfg.beta, mcfg.alpha) == (13, 13, 1, 2)
    mcfg, tcfg = _configs("tip_adapter", dataset="imagenet")
    assert (mcfg.beta_max, mcfg.alpha_max, mcfg.beta, mcfg.alpha, tcfg.crop_scale) == (7, 3, 1, 1.17, 0.5)
    mcfg, _ = _configs("tip_adapter", dataset="imagefolder:x")  # other data: the median of the eleven configs
    assert (mcfg.beta_max, mcfg.alpha_max, mcfg.beta, mcfg.alpha) == (12, 10, 1, 2)
    assert _configs("tip_adapter", dataset="imagenet", alpha=2.0)[0].alpha == 2.0

    mcfg, tcfg = _configs("clip_adapter", shots=1)
    assert (tcfg.optimizer, tcfg.lr, tcfg.batch_size, tcfg.epochs, mcfg.alpha) == ("sgd", 0.002, 32, 50, 0.2)
    assert _configs("clip_adapter", shots=16)[1].epochs == 200 and _configs("clip_adapter", "imagenet")[1].epochs == 50
    mcfg, _ = _configs("clip_adapter+ln")
    assert mcfg.layernorm and mcfg.layernorm_tower == "vision"


def test_adamw_epsilon_and_the_step_budget_schedule():
    p = [torch.nn.Parameter(torch.zeros(1))]
    assert make_optimizer(p, TrainConfig(optimizer="adamw", adam_eps=1e-4)).param_groups[0]["eps"] == 1e-4
    # the cosine runs over the step budget, not over whole epochs: 5 steps of 3 a epoch reach min_lr at step 5
    cfg = TrainConfig(lr=2e-4, iterations=5, epochs=2, warmup_epochs=0, schedule_unit="step", min_lr=1e-6)
    assert lr_at(1, cfg, 2, 3) == pytest.approx(1e-6)
    assert lr_at(0, cfg, 1, 3) == pytest.approx(1e-6 + 0.5 * (2e-4 - 1e-6) * (1 + math.cos(math.pi / 5)))

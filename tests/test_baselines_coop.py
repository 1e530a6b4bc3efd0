"""CoOp's family (coop, cocoop, kgcoop, prograd and the '+ln' presets) on a tiny random CLIP: prompt layout,
zero-shot equivalence at init, each method's formula by hand, what trains, reload, recipes and the commands."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import clipfit
from clipfit.backbone import Backbone
from clipfit.cli import main
from clipfit.engine.loop import forward_step, make_optimizer, train_step
from clipfit.engine.run import RunSpec, eval_run, load_run, resolve_configs, train_run
from clipfit.errors import ClipfitError
from clipfit.method import METHODS, Step, build_method
from clipfit.method.coop import prograd_direction
from clipfit.method.prompt import insert_context
from conftest import set_args

FAST = {"epochs": 2, "batch_size": 4, "warmup_epochs": 0}
NAMES = ["red", "green", "blue"]
PHOTO = "a photo of a {}."


def _cfg(method, **settings):
    cfg = METHODS.get(method).config()
    for k, v in settings.items():
        setattr(cfg, k, v)
    return cfg


def _method(tiny_clip, method, names=NAMES, template=PHOTO, **settings):
    return build_method(method, Backbone.from_pretrained(tiny_clip), names, template, _cfg(method, **settings))


def _images(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g)


def _logits(m, x):
    with torch.no_grad():
        return m.logits(m.image_features(x), m.text_features())


def _emb(m, text):
    tok = m.backbone.tokenize([text])
    return m.backbone.model.text_model.embeddings.token_embedding(tok["input_ids"])[0].detach()


# -- parameter counts ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cli_args, expected", [
    (["coop"], 8192), (["coop", "--set", "n_ctx=4"], 2048), (["cocoop"], 35360), (["kgcoop"], 2048),
    (["prograd"], 8192), (["coop+ln"], 8192 + 39936), (["kgcoop+ln"], 2048 + 39936),
    (["coop", "--set", "csc=true", "--classes", "10"], 10 * 8192),
])
def test_params_counts_for_vit_b16(cli_args, expected, capsys):
    assert main(["params", *cli_args, "--arch", "ViT-B/16"]) == 0
    assert capsys.readouterr().out.strip() == str(expected)


# -- CoOp: the prompt ----------------------------------------------------------------------------------------------

def test_coop_from_a_photo_of_a_is_zero_shot(tiny_clip):
    m = _method(tiny_clip, "coop", n_ctx=4, ctx_init="a photo of a")
    zs = build_method("zeroshot", m.backbone, NAMES, PHOTO)
    x = _images()
    assert torch.allclose(_logits(m, x), _logits(zs, x), atol=1e-6)
    # the prompt tensor is token_embedding("a photo of a <name>.") with rows 1..4 being the learned context
    emb, mask = m.prompt_embeds()
    built = insert_context(emb, m.ctx, m._ctx_pos).detach()
    assert torch.equal(built[0, :mask[0].sum()], _emb(m, "a photo of a red."))
    assert m._ctx_pos.tolist() == [[1, 2, 3, 4]] * 3
    # the learned context reaches the logits
    with torch.no_grad():
        m.ctx.add_(torch.randn_like(m.ctx) * 0.3)
    assert not torch.allclose(_logits(m, x), _logits(zs, x), atol=1e-3)


def test_template_words_and_suffix_from_the_dataset_template(tiny_clip):
    template = "a photo of {} the."  # words before '{}' initialise the context, the rest follows the name
    m = _method(tiny_clip, "coop", template=template, n_ctx=3, ctx_init="template", suffix="template")
    zs = build_method("zeroshot", m.backbone, NAMES, template)
    x = _images()
    assert torch.allclose(_logits(m, x), _logits(zs, x), atol=1e-6)
    with pytest.raises(ClipfitError, match="n_ctx to at least 3"):
        _method(tiny_clip, "coop", template=template, n_ctx=2, ctx_init="template")


@pytest.mark.parametrize("position, order", [
    ("end", ["sos", 0, 1, 2, 3, "red", "green", ".", "eos"]),
    ("middle", ["sos", 0, 1, "red", "green", 2, 3, ".", "eos"]),
    ("front", ["sos", "red", "green", 0, 1, 2, 3, ".", "eos"]),
])
def test_class_token_positions(tiny_clip, position, order):
    m = _method(tiny_clip, "coop", names=["red green", "blue"], n_ctx=4, class_token_position=position)
    emb, mask = m.prompt_embeds()
    ctx = torch.randn(4, emb.shape[-1])
    built = insert_context(emb, ctx, m._ctx_pos)[0, :mask[0].sum()]
    tokens = m.backbone.tokenize(["red green."])["input_ids"][0]  # sos red green . eos
    table = m.backbone.model.text_model.embeddings.token_embedding(tokens).detach()
    rows = {"sos": table[0], "red": table[1], "green": table[2], ".": table[3], "eos": table[4]}
    expected = torch.stack([ctx[o] if isinstance(o, int) else rows[o] for o in order])
    assert torch.equal(built.detach(), expected)


def test_class_specific_context(tiny_clip, tiny_folder, tmp_path):
    m = _method(tiny_clip, "coop", n_ctx=4, csc=True)
    assert m.ctx.shape == (3, 4, 32) and not m.class_agnostic and m.num_trainable() == 3 * 4 * 32
    # class c's feature is the shared-context model's feature for class c with context ctx[c]
    shared = _method(tiny_clip, "coop", n_ctx=4)
    for c in range(3):
        with torch.no_grad():
            shared.ctx.copy_(m.ctx[c])
        assert torch.allclose(m.text_features()[c], shared.text_features()[c], atol=1e-6)
    with pytest.raises(ClipfitError, match="context per class"):
        m.set_classes(["red", "green"])
    # a class-specific run cannot score new classes: the base-to-new grid reports n/a instead of failing
    res = clipfit.base2new(tiny_clip, dataset=f"imagefolder:{tiny_folder}", methods=["coop"], seeds=[1], shots=2,
                           out=tmp_path / "grid", progress=False, **{**FAST, "epochs": 1, "n_ctx": 4, "csc": True})
    r = res.summary["results"]["coop"]
    assert r["new"]["mean"] is None and r["base"]["mean"] is not None


# -- CoCoOp ---------------------------------------------------------------------------------------------------------

def test_cocoop_batched_equals_the_per_image_loop(tiny_clip):
    m = _method(tiny_clip, "cocoop", max_prompts=6)  # 2 images of 3 classes per text-encoder call
    torch.manual_seed(0)
    with torch.no_grad():
        for p in m.meta_net.parameters():
            p.normal_(0, 0.5)  # a meta-net whose shifts matter
    x = _images(5)
    with torch.no_grad():
        f = m.image_features(x)
        batched = m.logits(f, m.text_features())
        emb, mask = m.prompt_embeds()
        w1, b1, w2, b2 = m.meta_net[0].weight, m.meta_net[0].bias, m.meta_net[2].weight, m.meta_net[2].bias
        loop = []
        for fi in f:  # the reference's loop: one image's shifted context, its C prompts
            shift = w2 @ torch.relu(w1 @ fi + b1) + b2
            text = m.encode_prompts(m.ctx + shift, emb, mask)  # [C, D]
            loop.append(m.backbone.logit_scale * text @ fi)
    assert torch.allclose(batched, torch.stack(loop), atol=1e-6)
    assert not torch.allclose(batched, _logits(_coop_like(m), x), atol=1e-3)


def _coop_like(m):
    """CoOp with CoCoOp's context (and classes, template, backbone)."""
    coop = build_method("coop", m.backbone, m.classnames, m.templates, _cfg("coop", n_ctx=m.cfg.n_ctx))
    with torch.no_grad():
        coop.ctx.copy_(m.ctx)
    return coop


def test_cocoop_with_a_zero_last_layer_is_coop(tiny_clip):
    m = _method(tiny_clip, "cocoop")
    with torch.no_grad():
        m.ctx.add_(torch.randn_like(m.ctx) * 0.1)
        m.meta_net[2].weight.zero_()
        m.meta_net[2].bias.zero_()
    x = _images()
    assert torch.allclose(_logits(m, x), _logits(_coop_like(m), x), atol=1e-6)
    d = m.backbone.model.visual_projection.out_features
    assert m.num_trainable() == 4 * 32 + (d * (d // 16) + d // 16) + ((d // 16) * 32 + 32)


# -- KgCoOp ---------------------------------------------------------------------------------------------------------

def test_kg_term_is_lambda_times_one_minus_mean_cosine(tiny_clip):
    m = _method(tiny_clip, "kgcoop")
    m.on_train_start()
    with torch.no_grad():
        m.ctx.add_(torch.randn_like(m.ctx) * 0.5)
    text = m.text_features()
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    step = Step(torch.zeros(4, 32), labels, text, torch.zeros(4, 32), logits)
    loss, parts = m.loss(step)
    zs = build_method("zeroshot", m.backbone, NAMES, PHOTO).text_features()
    cos = (text * zs).sum(-1) / (text.norm(dim=-1) * zs.norm(dim=-1))
    hand = 8.0 * (1 - cos.mean())
    assert float(hand.detach()) > 1e-3
    assert float(loss.detach()) == pytest.approx(float(F.cross_entropy(logits, labels) + hand.detach()), abs=1e-5)
    # the paper's form, mean ||w - w_clip||^2, is twice the code's for unit vectors: lambda 4 there = 8 here
    m.cfg.kg_form, m.cfg.kg_weight = "squared", 4.0
    assert float(m.loss(step)[0].detach()) == pytest.approx(float(loss.detach()), abs=1e-5)
    a, b = F.normalize(torch.randn(7, 16), dim=-1), F.normalize(torch.randn(7, 16), dim=-1)
    assert float(1 - F.cosine_similarity(a, b).mean()) == pytest.approx(float(0.5 * ((a - b) ** 2).sum(-1).mean()), abs=1e-6)


def test_kg_term_is_zero_at_init_when_template_and_context_agree(tiny_clip):
    m = _method(tiny_clip, "kgcoop")  # context 'a photo of a', teacher 'a photo of a {}.'
    m.on_train_start()
    text = m.text_features()
    kg = m.kg_term(text)
    assert float(kg.detach()) == 0.0
    kg.backward()
    assert m.ctx.grad.abs().max() < 1e-6
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    step = Step(torch.zeros(4, 32), labels, text, torch.zeros(4, 32), logits)
    assert float(m.loss(step)[0].detach()) == pytest.approx(float(F.cross_entropy(logits, labels)), abs=1e-6)


# -- ProGrad --------------------------------------------------------------------------------------------------------

def test_prograd_projection_on_hand_made_gradients():
    g_ce, g_kd = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    assert torch.allclose(prograd_direction(g_ce, g_kd, 1.0), torch.tensor([0.5, 0.5]))
    assert float(prograd_direction(g_ce, g_kd, 1.0) @ g_kd) == pytest.approx(0.0, abs=1e-7)
    assert torch.allclose(prograd_direction(g_ce, g_kd, 0.5), torch.tensor([0.75, 0.25]))
    assert torch.equal(prograd_direction(g_ce, torch.tensor([1.0, 1.0]), 1.0), g_ce)  # no conflict: unchanged
    assert torch.equal(prograd_direction(g_ce, torch.zeros(2), 1.0), g_ce)  # the reference would divide by zero
    assert torch.equal(prograd_direction(g_ce, None, 1.0), g_ce)


def test_prograd_init_is_template_words_after_zeros(tiny_clip):
    m = _method(tiny_clip, "prograd", n_ctx=6)
    assert torch.equal(m.ctx[:2].detach(), torch.zeros(2, 32))
    assert torch.equal(m.ctx[2:].detach(), _emb(m, "a photo of a")[1:5])
    with pytest.raises(ClipfitError, match="layernorm_tower=text"):
        _method(tiny_clip, "prograd", n_ctx=6, layernorm=True, layernorm_tower="vision")


def test_prograd_step_follows_the_projected_gradient(tiny_clip):
    m = _method(tiny_clip, "prograd", n_ctx=6, temperature=2.0)
    m.on_train_start()
    m.train()
    x = _images(6)
    with torch.no_grad():
        f = m.image_features(x)
    ctx0 = m.ctx.detach().clone()

    # by hand: both losses, both gradients, the rule
    logits = m.backbone.logit_scale * f @ m.text_features().t()
    teacher = m.backbone.logit_scale * f @ build_method("zeroshot", m.backbone, NAMES, PHOTO).text_features().t().detach()
    y = teacher.argmin(-1)  # labels the teacher finds least likely: the two gradients conflict
    ce = F.cross_entropy(logits, y)
    kd = 4.0 * -(F.softmax(teacher / 2, -1) * F.log_softmax(logits / 2, -1)).sum(-1).mean()
    g_ce, = torch.autograd.grad(ce, m.ctx, retain_graph=True)
    g_kd, = torch.autograd.grad(kd, m.ctx)
    dot = (g_ce * g_kd).sum()
    assert dot < 0  # this batch has a conflict, so the projection is exercised
    g = g_ce - dot / (g_kd * g_kd).sum() * g_kd

    # the method, through the engine's calls: forward (logits, teacher) -> loss -> backward -> optimiser step
    cfg = resolve_configs(RunSpec(dataset="synth", method="prograd"))[1]
    cfg.momentum, cfg.weight_decay, cfg.lr = 0.0, 0.0, 0.1
    params = list(m.trainable().values())
    opt = make_optimizer(params, cfg)
    step = forward_step(m, lambda _: f, x, y, None, torch.device("cpu"), "fp32")
    parts = train_step(m, step, opt, params, cfg, 0, 1.0)
    assert parts["kd"] == pytest.approx(float(kd.detach()), rel=1e-5)
    assert torch.allclose(m.ctx.detach(), ctx0 - 0.1 * g, atol=1e-6)


def test_prograd_with_a_zero_distillation_gradient_takes_the_ce_step(tiny_clip, monkeypatch):
    m = _method(tiny_clip, "prograd", n_ctx=6)
    m.on_train_start()
    m.train()
    x, y = _images(4), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        f = m.image_features(x)
    g_ce, = torch.autograd.grad(F.cross_entropy(m.logits(f, m.text_features()), y), m.ctx)
    monkeypatch.setattr(m, "kd_loss", lambda logits, teacher: (logits * 0).sum())  # grad KD = 0 exactly
    step = forward_step(m, lambda _: f, x, y, None, torch.device("cpu"), "fp32")
    step.loss, _ = m.loss(step)
    m.backward(step)
    assert torch.isfinite(m.ctx.grad).all() and torch.equal(m.ctx.grad, g_ce)


# -- recipes ---------------------------------------------------------------------------------------------------------

def _configs(method, dataset="eurosat", protocol="fewshot", shots=16, **settings):
    return resolve_configs(RunSpec(dataset=dataset, method=method, protocol=protocol, shots=shots, settings=settings))


@pytest.mark.parametrize("shots, epochs", [(1, 50), (2, 100), (4, 100), (8, 200), (16, 200)])
def test_coop_epochs_by_shots(shots, epochs):
    mcfg, tcfg = _configs("coop", shots=shots)
    assert (tcfg.epochs, mcfg.n_ctx, mcfg.ctx_init, tcfg.select) == (epochs, 16, "", "last")
    assert (tcfg.optimizer, tcfg.lr, tcfg.batch_size, tcfg.warmup_lr) == ("sgd", 0.002, 32, 1e-5)
    assert _configs("prograd", shots=shots)[1].epochs == epochs


def test_family_recipes_by_protocol():
    for protocol in ("base2new", "crossdataset", "domainshift"):
        mcfg, tcfg = _configs("coop", protocol=protocol)
        assert (mcfg.n_ctx, mcfg.ctx_init, mcfg.suffix, tcfg.epochs) == (4, "a photo of a", ".", 200)
        assert _configs("coop+ln", protocol=protocol)[0].n_ctx == 4
    assert _configs("coop", dataset="imagenet", protocol="base2new")[1].epochs == 50
    assert _configs("coop", dataset="imagenet", shots=1)[1].epochs == 50
    mcfg, tcfg = _configs("cocoop", protocol="base2new")
    assert (mcfg.n_ctx, mcfg.ctx_init, tcfg.batch_size, tcfg.epochs, tcfg.lr, tcfg.select) == (4, "a photo of a", 1, 10, 0.002, "last")
    mcfg, tcfg = _configs("kgcoop", shots=4)
    assert (mcfg.n_ctx, mcfg.kg_weight, tcfg.batch_size, tcfg.epochs, tcfg.select) == (4, 8.0, 128, 100, "last")
    assert _configs("prograd", dataset="dtd", shots=16)[0].prograd_lambda == 0.8
    assert _configs("prograd", dataset="textures", shots=8)[0].prograd_lambda == 0.8  # aliases resolve
    assert _configs("prograd", dataset="dtd", shots=4)[0].prograd_lambda == 1.0
    assert _configs("prograd", dataset="dtd", protocol="base2new")[0].prograd_lambda == 1.0
    assert _configs("prograd", dataset="caltech101", shots=16)[0].prograd_lambda == 1.0
    # every rule is a default the user overrides
    mcfg, tcfg = _configs("coop", protocol="base2new", n_ctx=8, epochs=3, select="best")
    assert (mcfg.n_ctx, tcfg.epochs, tcfg.select) == (8, 3, "best")


# -- the commands ----------------------------------------------------------------------------------------------------

def test_commands_accept_the_family(tiny_clip, tiny_folder, tmp_path, capsys):
    base = ["--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "2", "--quiet",
            *set_args({**FAST, "epochs": 1})]
    out = tmp_path / "cocoop"
    assert main(["train", *base, "--method", "cocoop", "--set", "batch_size=2", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert main(["eval", str(out), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(res["test"]["all"]["accuracy"])
    image = f"{tiny_folder}/red/00.png"
    assert main(["predict", str(out), image, "--classes", "red,blue", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["predictions"][0]["top"]
    assert {t["class"] for t in top} == {"red", "blue"}
    assert main(["export", str(out), "--merged", str(tmp_path / "merged")]) == 2
    assert "cannot be merged" in capsys.readouterr().err
    assert main(["methods", "--details"]) == 0
    listing = capsys.readouterr().out
    for name in ("coop", "coop+ln", "cocoop", "kgcoop", "kgcoop+ln", "prograd"):
        assert f"\n{name} " in listing
    assert "recipe kgcoop:" in listing and "kg_form" in listing and "prograd_lambda" in listing


def test_kgcoop_scores_new_classes(tiny_clip, tiny_folder, tmp_path):
    spec = RunSpec(dataset=f"imagefolder:{tiny_folder}", model=tiny_clip, method="kgcoop", shots=2, subsample="base",
                   settings={**FAST, "epochs": 1})
    train_run(spec, tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    assert run.method.classnames == ["blue", "green"]  # base: the first half of the sorted classes
    new = eval_run(tmp_path / "run", subsample="new", progress=False, loaded=run)
    assert new["n"] > 0 and run.method.classnames == ["red"]

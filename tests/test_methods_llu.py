"""Localized Latent Updates (LLU): locality of the update, stored sets, clustering, ablations, training on
cached features (no back-propagation through CLIP), saving and reloading, new classes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipfit.backbone import Backbone
from clipfit.data.catalogue import load_task
from clipfit.engine.run import RunSpec, eval_run, load_run, train_run
from clipfit.io import load_tensors
from clipfit.method import METHODS, Step, build_method
from clipfit.method.llu import ABLATIONS, cluster_points

FAST = {"epochs": 3, "batch_size": 4, "warmup_epochs": 0, "lr": 0.5}


@pytest.fixture()
def llu_factory(tiny_clip, tiny_folder):
    task = load_task(f"imagefolder:{tiny_folder}")

    def make(preset="llu", **kw):
        cfg = METHODS.get(preset).config()
        for k, v in kw.items():
            setattr(cfg, k, v)
        m = build_method(preset, Backbone.from_pretrained(tiny_clip), task.classnames, task.template, cfg)
        m.eval()
        return m

    return make


def _perturb(m, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lin in (m.image_map.map, m.text_map.map):
            lin.weight.add_(scale * torch.randn(lin.weight.shape, generator=g))
            lin.bias.add_(scale * torch.randn(lin.bias.shape, generator=g))


def test_far_points_keep_their_prediction_stored_points_move(llu_factory):
    m = llu_factory()
    dim = m.image_map.map.in_features
    g = torch.Generator().manual_seed(1)
    stored = F.normalize(torch.randn(6, dim, generator=g), dim=-1)
    m.on_train_start()  # stores the class text features
    m.on_features(stored, torch.tensor([0, 1, 2, 0, 1, 2]))
    assert torch.allclose(m.image_map.bank, stored)  # fewer points than clusters: kept as they are
    # identity initialisation: nothing changes anywhere before training
    assert torch.allclose(m.adapt_image_features(stored), stored, atol=1e-6)
    _perturb(m)
    far = -stored[:2]  # cosine -1 to its own stored point; drop any positive overlap with the others
    far = F.normalize(far - (far @ stored.t()).clamp(min=0) @ stored, dim=-1)
    assert (far @ stored.t()).max() <= 1e-6
    with torch.no_grad():
        # image side: a far point keeps its feature (alpha <= beta * exp(-gamma) ~ 1e-9), a stored one moves
        assert torch.allclose(m.adapt_image_features(far), far, atol=1e-6)
        assert (m.adapt_image_features(stored) - stored).norm(dim=-1).min() > 0.05
        assert torch.allclose(m.image_map.alpha(stored, m.cfg), torch.full((6, 1), 0.5), atol=1e-6)
        # text side: the training classes are its stored set, so their features move
        text_zs = m.frozen_text_features()
        assert (m.text_features() - text_zs).norm(dim=-1).min() > 0.05
        # predictions: with the text side at the identity, a far image is classified exactly as zero-shot CLIP
        # classifies it, while the predictions of stored images change
        m.text_map.reset_parameters("identity")
        zs = lambda v: m.backbone.logit_scale * v @ text_zs.t()  # noqa: E731
        assert torch.allclose(m.logits(m.adapt_image_features(far), m.text_features()), zs(far), atol=1e-4)
        assert not torch.allclose(m.logits(m.adapt_image_features(stored), m.text_features()), zs(stored), atol=1e-2)


def test_new_classes_far_from_training_classes_are_zero_shot(llu_factory, tiny_folder):
    m = llu_factory()
    m.on_train_start()
    _perturb(m)
    base_text = m.text_features().detach()
    m.set_classes(["bicycle wheel", "quartz"])  # other classes: their text is not in the stored set
    new_zs = m.frozen_text_features()
    sim = (new_zs @ m.text_map.bank.t()).amax(-1)
    alpha = m.text_map.alpha(new_zs, m.cfg).squeeze(-1)
    assert torch.allclose(alpha, 0.5 * torch.exp(-20 * (1 - sim)))
    with torch.no_grad():
        moved = (m.text_features() - new_zs).norm(dim=-1)
        step = (m.text_map.map(new_zs) - new_zs).norm(dim=-1)
    assert (moved <= 2 * alpha * step + 1e-6).all()  # the update is bounded by the blend weight
    assert (moved < 0.05).all()
    assert base_text.shape[0] == 3 and m.class_agnostic


def test_ablation_presets(llu_factory):
    dim = 32
    x = F.normalize(torch.randn(5, dim, generator=torch.Generator().manual_seed(2)), dim=-1)
    near = F.normalize(x[0] + 0.05 * torch.randn(dim, generator=torch.Generator().manual_seed(3)), dim=-1)
    far = F.normalize(torch.randn(1, dim, generator=torch.Generator().manual_seed(4)), dim=-1)

    def alphas(preset="llu"):
        m = llu_factory(preset)
        m.on_features(x, torch.zeros(5, dtype=torch.long))
        a = lambda v: float(m.image_map.alpha(v.reshape(1, -1), m.cfg))  # noqa: E731
        return m, a(x[0]), a(near), a(far)

    m, at, an, af = alphas()
    assert at == pytest.approx(0.5, abs=1e-6) and 0 < an < 0.5 and af < 0.5 * 1e-3
    assert alphas("llu:no_damp")[1] == pytest.approx(1.0, abs=1e-6)
    _, at, an, af = alphas("llu:no_mask")
    assert at == an == af == pytest.approx(0.5)
    _, at, an, af = alphas("llu:dirac")
    assert at == pytest.approx(0.5, abs=1e-6) and an == 0.0 and af == 0.0
    assert alphas("llu:no_reg")[0].cfg.lam == 0.0
    m = llu_factory("llu:rand_init")
    assert not torch.allclose(m.image_map.map.weight, torch.eye(dim))
    m = llu_factory("llu:linear")
    assert (m.cfg.mask, m.cfg.beta, m.cfg.lam, m.cfg.init, m.cfg.clusters) == ("none", 1.0, 0.0, "random", 0)
    y = F.normalize(torch.randn(3, dim), dim=-1)
    assert torch.allclose(m.adapt_image_features(y), F.normalize(m.image_map.map(y), dim=-1))  # plain g(x)
    assert set(ABLATIONS) == {"no_cluster", "no_damp", "no_mask", "dirac", "no_reg", "rand_init", "linear"}
    assert all(f"llu:{a}" in METHODS for a in ABLATIONS)


def test_regulariser_forms(llu_factory):
    m = llu_factory()
    assert float(m.regulariser().detach()) == 0.0
    with torch.no_grad():
        m.image_map.map.bias.fill_(0.1)
    assert float(m.regulariser().detach()) == pytest.approx(0.01)  # mean(b^2)
    m2 = llu_factory(reg="norm")
    with torch.no_grad():
        m2.image_map.map.bias.fill_(0.1)
    assert float(m2.regulariser().detach()) == pytest.approx(0.1 * m2.image_map.map.in_features ** 0.5)
    logits = torch.zeros(2, 3)
    loss, parts = m.loss(Step(torch.zeros(2, 32), torch.tensor([0, 1]), torch.zeros(3, 32), torch.zeros(2, 32), logits))
    assert float(loss.detach()) == pytest.approx(parts["ce"] + 1e3 * 0.01, rel=1e-5)


def test_clustering_to_normalised_means():
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(4, 16, generator=g), dim=-1)
    pts = F.normalize(centres.repeat_interleave(10, 0) + 0.01 * torch.randn(40, 16, generator=g), dim=-1)
    reps = cluster_points(pts, 4)
    assert reps.shape == (4, 16) and torch.allclose(reps.norm(dim=-1), torch.ones(4))
    # each representative is (close to) one of the centres, all four covered
    assert sorted((reps @ centres.t()).argmax(-1).tolist()) == [0, 1, 2, 3]
    assert (reps @ centres.t()).amax(-1).min() > 0.99
    assert cluster_points(pts, 0) is pts and cluster_points(pts, 40) is pts


def test_training_on_cached_features_and_reload(tiny_clip, tiny_folder, tmp_path, monkeypatch):
    bb = Backbone.from_pretrained(tiny_clip)
    before = {n: p.detach().clone() for n, p in bb.model.named_parameters()}
    # the engine encodes each image once (no back-propagation through CLIP, no per-epoch encoding)
    calls = {"n": 0}
    orig = bb.encode_image

    def counting(pixel_values, normalize=True):
        calls["n"] += len(pixel_values)
        return orig(pixel_values, normalize)

    monkeypatch.setattr(bb, "encode_image", counting)
    spec = RunSpec(dataset=f"imagefolder:{tiny_folder}", model=tiny_clip, method="llu", shots=2, seed=1,
                   settings={**FAST, "clusters": 4})
    out = tmp_path / "run"
    metrics = train_run(spec, out, progress=False, backbone=bb, test=False)
    assert calls["n"] == 3 * 2 + 3 * 2  # train and val images, once each
    assert all(torch.equal(before[n], p) for n, p in bb.model.named_parameters())  # CLIP untouched
    tuned = load_tensors(out / "tuned.safetensors")
    assert set(tuned) == {"image_map.map.weight", "image_map.map.bias", "text_map.map.weight", "text_map.map.bias",
                          "image_map.bank", "text_map.bank"}
    assert tuned["image_map.bank"].shape[0] == 4  # 6 training images clustered to 4
    assert tuned["text_map.bank"].shape[0] == 3
    assert not torch.equal(tuned["image_map.map.weight"], torch.eye(tuned["image_map.map.weight"].shape[0]))
    assert metrics["trainable_parameters"] == 2 * (32 * 32 + 32)
    a, b = load_run(out), load_run(out)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        la = a.method.logits(a.method.image_features(x), a.method.text_features())
        lb = b.method.logits(b.method.image_features(x), b.method.text_features())
    assert torch.equal(la, lb)
    assert torch.equal(a.method.image_map.bank, tuned["image_map.bank"])
    # new classes: class-agnostic, evaluated with the base classes' stored text set
    res = eval_run(out, subsample="new", progress=False, loaded=a)
    assert res["n"] > 0 and torch.equal(a.method.text_map.bank, tuned["text_map.bank"])


def test_augmented_views_multiply_the_cache(tiny_clip, tiny_folder, tmp_path):
    spec = RunSpec(dataset=f"imagefolder:{tiny_folder}", model=tiny_clip, method="llu", shots=2, seed=1,
                   settings={**FAST, "views": 3, "clusters": 0})
    train_run(spec, tmp_path / "run", progress=False, test=False)
    assert load_tensors(tmp_path / "run" / "tuned.safetensors")["image_map.bank"].shape[0] == 3 * 2 * 3

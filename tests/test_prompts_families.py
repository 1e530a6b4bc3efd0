"""The prompt methods on SigLIP-family models (no start token, fixed-length padding, bidirectional text attention,
pooled at the last position): the context goes at the family's `text_start`, the prompt keeps the text tower's
length, and the feature is read where the family pools (docs/backbones.md)."""
from __future__ import annotations

import json

import pytest
import torch

from clipfit.backbone import Backbone
from clipfit.cli import main
from clipfit.method import METHODS, build_method

CLASSES = ["red", "green", "blue"]
PHOTO = "a photo of a {}."
SIGLIP_LIKE = ("siglip", "siglip2")


def _cfg(method, **settings):
    cfg = METHODS.get(method).config()
    for k, v in settings.items():
        setattr(cfg, k, v)
    return cfg


def _features(bb, method, classes=CLASSES, **settings) -> torch.Tensor:
    m = build_method(method, bb, classes, PHOTO, _cfg(method, **settings))
    with torch.no_grad():
        return m.text_features()


@pytest.mark.parametrize("name", ["clip", *SIGLIP_LIKE])
def test_coop_with_ctx_init_is_zero_shot_at_init(tiny_families, name):
    """CoOp's 4 vectors from 'a photo of a' + 'name.' are the zero-shot prompt 'a photo of a name.': the same logits
    (red when the context goes after a start token SigLIP does not have, or the feature is read elsewhere)."""
    bb = Backbone.from_pretrained(tiny_families[name])
    coop = build_method("coop", bb, CLASSES, PHOTO, _cfg("coop", n_ctx=4, ctx_init="a photo of a"))
    zs = build_method("zeroshot", bb, CLASSES, PHOTO)
    x = torch.randn(4, 3, bb.image_spec.size, bb.image_spec.size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        image = zs.image_features(x)
        ours, theirs = coop.logits(image, coop.text_features()), zs.logits(image, zs.text_features())
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert theirs.softmax(-1).std(-1).min() > 1e-4  # the classes score differently: a wrong prompt would show


@pytest.mark.parametrize("name", SIGLIP_LIKE)
def test_maple_text_prompt_is_placed_as_the_family_reads_it(tiny_families, name):
    """MaPLe with depth 1 (P_0 only) from 'a photo of a' is the zero-shot prompt on the text side."""
    bb = Backbone.from_pretrained(tiny_families[name])
    zs = build_method("zeroshot", bb, CLASSES, PHOTO)
    maple = build_method("maple", bb, CLASSES, PHOTO, _cfg("maple", n_ctx=4, depth=1, ctx_init="a photo of a"))
    with torch.no_grad():
        torch.testing.assert_close(maple.text_features(), zs.text_features(), atol=1e-5, rtol=0)
    assert maple._ids.shape[1] + 4 == bb.model.text_model.config.max_position_embeddings


@pytest.mark.parametrize("name", SIGLIP_LIKE)
def test_the_prompt_keeps_the_towers_length_and_the_name_reaches_the_pooled_feature(tiny_families, name):
    bb = Backbone.from_pretrained(tiny_families[name])
    n_pos = bb.model.text_model.config.max_position_embeddings
    m = build_method("coop", bb, CLASSES, PHOTO, _cfg("coop", n_ctx=4))
    assert m._ids.shape == (3, n_pos)  # placeholders replaced, not a longer sequence
    assert m._ctx_pos.tolist() == [[0, 1, 2, 3]] * 3  # at text_start: no start token
    assert bb.family.pooled_index(bb.model, m._ids).tolist() == [n_pos - 1] * 3
    torch.manual_seed(0)
    a = _features(bb, "coop", n_ctx=4)
    torch.manual_seed(0)
    b = _features(bb, "coop", ["red", "green", "photo"], n_ctx=4)
    torch.testing.assert_close(a[:2], b[:2], atol=1e-6, rtol=0)  # the same context, names, pooled position
    assert (a[2] - b[2]).abs().max() > 1e-3  # another name, another pooled feature


def _predict(run, images, capsys) -> torch.Tensor:
    assert main(["predict", str(run), *images, "--topk", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["predictions"]
    return torch.tensor([[{t["class"]: t["probability"] for t in r["top"]}[c] for c in CLASSES] for r in rows])


@pytest.mark.parametrize("name", SIGLIP_LIKE)
@pytest.mark.parametrize("method", ["coop", "kgcoop"])
def test_train_predict_reload_on_siglip(tiny_families, tiny_folder, tmp_path, capsys, name, method):
    """Trains, predicts; the run reloaded in Python gives the same probabilities, the untrained model others; a
    merged export is refused (the context vectors are no weights of the model)."""
    from clipfit import api

    run, images = tmp_path / "run", [f"{tiny_folder}/{c}/00.png" for c in CLASSES]
    assert main(["train", "--model", tiny_families[name], "--dataset", f"imagefolder:{tiny_folder}", "--method",
                 method, "--shots", "2", "--set", "epochs=2", "--set", "warmup_epochs=0", "--set", "lr=0.5",
                 "--set", "n_ctx=4", "--set", "ctx_init=a photo of a",
                 "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    probs = _predict(run, images, capsys)
    reloaded = api.load(run).predict(images, topk=3)
    again = torch.tensor([[{t["class"]: t["probability"] for t in r["top"]}[c] for c in CLASSES] for r in reloaded])
    torch.testing.assert_close(again, probs, atol=2e-6, rtol=0)
    bb = Backbone.from_pretrained(tiny_families[name])
    assert main(["export", str(run), "--merged", str(tmp_path / "merged")]) == 2
    assert "\n" not in capsys.readouterr().err.strip()
    untrained = build_method(method, bb, CLASSES, PHOTO, _cfg(method, n_ctx=4, ctx_init="a photo of a"))
    from clipfit.data.images import open_image
    from clipfit.data.transforms import eval_transform

    x = torch.stack([eval_transform(bb.image_spec)(open_image(p)) for p in images])
    with torch.no_grad():
        before = untrained.logits(untrained.image_features(x), untrained.text_features()).softmax(-1)
    assert (before - probs).abs().max() > 1e-4  # training moved the context


def test_base2new_on_siglip_runs_coop(tiny_families, tiny_folder, tmp_path, capsys):
    """The issue's 'done when': zeroshot, coop and clipfit on a tiny SigLIP folder, end to end."""
    assert main(["base2new", "--model", tiny_families["siglip"], "--dataset", f"imagefolder:{tiny_folder}",
                 "--methods", "zeroshot,coop,clipfit", "--set", "epochs=1", "--shots", "2", "--seeds", "1", "--quiet",
                 "--out", str(tmp_path / "grid"), "--json"]) == 0
    rows = {r["method"]: r["metrics"] for r in json.loads(capsys.readouterr().out)["rows"]}
    assert set(rows) == {"zeroshot", "coop", "clipfit"} and rows["coop"]["hm"]["mean"] > 0


def test_a_family_pooling_otherwise_is_refused_the_prompt_methods():
    from clipfit.engine.support import unsupported
    from clipfit.families import FAMILIES
    from clipfit.families.siglip import Siglip

    class MeanPooled(Siglip):
        text_pooling = "mean"

    for name in ("clip", "metaclip_2", "siglip", "siglip2"):
        assert unsupported("coop", FAMILIES.get(name)) is None and unsupported("maple", FAMILIES.get(name)) is None
    assert "pools 'mean'" in (unsupported("coop", MeanPooled()) or "")
    assert unsupported("clipfit", MeanPooled()) is None

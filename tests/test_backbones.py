"""Backbones of every family through clipfit's own paths (loading, image transforms, tokenising, scoring): zero-shot
at initialisation gives the model's own logits, as transformers computes them on the same images and prompts."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from clipfit.backbone import Backbone
from clipfit.cli import main
from clipfit.data.transforms import eval_transform
from clipfit.method import build_method

CLASSES = ["red", "green", "blue"]
TEMPLATE = "a photo of the {}"
SIGLIP_LIKE = ("siglip", "siglip2")


def _images(name: str) -> list[Image.Image]:
    """Non-square images (each family's resize and crop rule shows), square for NaFlex (whose own processor keeps the
    aspect ratio with another patch count; clipfit squares every image)."""
    rng = np.random.default_rng(1)
    shape = (48, 48, 3) if name == "siglip2" else (36, 52, 3)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for _ in range(4)]


def _transformers_logits(folder: str, name: str, images: list[Image.Image]) -> torch.Tensor:
    """logits_per_image of the model's own forward, with its own tokenizer and image processor (SigLIP: prompts
    padded on the right to the full length without an attention mask, as trained; transformers' Siglip2Tokenizer
    class pads on the left unless told)."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(folder).eval()
    tok, proc = AutoTokenizer.from_pretrained(folder), AutoImageProcessor.from_pretrained(folder)
    texts = [TEMPLATE.format(c) for c in CLASSES]
    if name in SIGLIP_LIKE:
        text = {"input_ids": tok(texts, padding="max_length", max_length=64, padding_side="right",
                                 return_tensors="pt")["input_ids"]}
    else:
        text = dict(tok(texts, padding=True, return_tensors="pt"))
    with torch.no_grad():
        return model(**text, **proc(images=images, return_tensors="pt")).logits_per_image


@pytest.mark.parametrize("name", ["clip", "metaclip_2", "siglip", "siglip2"])
def test_zero_shot_at_init_is_the_models_own(tiny_families, name):
    folder = tiny_families[name]
    bb = Backbone.from_pretrained(folder)
    assert bb.family.name == name and type(bb.model).__name__ == bb.family.model_class
    images = _images(name)
    method = build_method("zeroshot", bb, CLASSES, TEMPLATE)
    x = torch.stack([eval_transform(bb.image_spec)(im) for im in images])
    with torch.no_grad():
        image, text = method.image_features(x), method.text_features()
        ours = method.logits(image, text)  # the zero-shot method's own scores, SigLIP's bias included
    own = _transformers_logits(folder, name, images)
    torch.testing.assert_close(ours, own, atol=2e-4, rtol=0)
    torch.testing.assert_close(ours.softmax(-1), own.softmax(-1), atol=1e-5, rtol=0)
    assert own.std(0).max() > 1e-2  # the images differ, so a wrong image path would show
    if name in SIGLIP_LIKE:
        assert own.max() < -5  # SigLIP's bias (-10) is in the scores


def test_a_model_of_another_family_is_refused_in_one_line(tmp_path, capsys):
    d = tmp_path / "blip"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "blip", "architectures": ["BlipModel"]}))
    assert main(["train", "--model", str(d), "--dataset", "synth_faded", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "model_type 'blip' (BlipModel) is not a model family clipfit adapts" in err
    assert all(f"model_type {t!r}" in err for t in ("clip", "metaclip_2", "siglip", "siglip2")), err

def test_methods_marks_what_runs_on_the_models_family(tiny_families, capsys):
    for name in ("siglip", "metaclip_2"):  # every method runs on both (the prompt methods read SigLIP's layout too)
        assert main(["methods", "--model", tiny_families[name]]) == 0
        assert " 0 methods" not in (out := capsys.readouterr().out) and "\n- " not in out and "\n+ coop" in out


def test_params_counts_on_the_siglip_base_architectures(capsys):
    """As the adapters' declarations count them (scripts/family_counts.py): CLIPFit 12 x 768 text FFN output biases +
    26 image LayerNorms x 2 x 768; CLIP-LoRA r=2 on q, k, v of 24 layers of width 768; a linear probe on the 768-d
    embedding (no image projection)."""
    for arch in ("siglip-base-patch16-224", "siglip2-base-patch16-224"):
        for method, count in (("clipfit", 9_216 + 39_936), ("clip_lora", 24 * 3 * 2 * (768 + 768)),
                              ("linear_probe", 10 * (768 + 1))):
            assert main(["params", method, "--arch", arch, "--classes", "10", "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["trainable"] == count, (arch, method)
    assert main(["params", "coop", "--arch", "siglip-base-patch16-224", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trainable"] == 16 * 768  # 16 context vectors of the text width

def _predict(run, images, capsys) -> torch.Tensor:
    """clipfit predict's probabilities [images, CLASSES]."""
    assert main(["predict", str(run), *images, "--topk", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["predictions"]
    return torch.tensor([[{t["class"]: t["probability"] for t in r["top"]}[c] for c in CLASSES] for r in rows])


def _reloaded(folder, images) -> torch.Tensor:
    """Probabilities of a merged export loaded back as a plain model: zero-shot with the run's own prompts."""
    from clipfit.data.images import open_image

    info = json.loads((folder / "clipfit.json").read_text())
    bb = Backbone.from_pretrained(str(folder))
    method = build_method("zeroshot", bb, CLASSES, info["templates"])
    x = torch.stack([eval_transform(bb.image_spec)(open_image(p)) for p in images])
    with torch.no_grad():
        return method.logits(method.image_features(x), method.text_features()).softmax(-1)


@pytest.mark.parametrize("name", ["metaclip_2", "siglip", "siglip2"])
@pytest.mark.parametrize("method", ["zeroshot", "clipfit", "layernorm", "linear_probe", "clip_lora"])
def test_train_predict_export_reload_on_each_family(tiny_families, tiny_folder, tmp_path, capsys, name, method):
    """Each method trains, predicts, exports (when mergeable) and reloads with the same probabilities (the prompt
    methods: tests/test_prompts_families.py)."""
    from clipfit.method import METHODS

    run, images = tmp_path / "run", [f"{tiny_folder}/{c}/00.png" for c in CLASSES]
    args = ["train", "--model", tiny_families[name], "--dataset", f"imagefolder:{tiny_folder}", "--method", method,
            "--shots", "2", "--set", "epochs=2", *(["--set", "iterations=4"] if method == "clip_lora" else []),
            "--quiet", "--out", str(run)]
    assert main(args) == 0
    capsys.readouterr()
    probs = _predict(run, images, capsys)
    merged = tmp_path / "merged"
    if not METHODS.get(method).cls.mergeable:
        assert main(["export", str(run), "--merged", str(merged)]) == 2
        return
    assert main(["export", str(run), "--merged", str(merged)]) == 0
    capsys.readouterr()
    torch.testing.assert_close(_reloaded(merged, images), probs, atol=2e-6, rtol=0)
    if method != "zeroshot":  # the export is the tuned model, not the original
        assert not torch.equal(_reloaded(merged, images), _reloaded_original(tiny_families[name], merged, images))


def _reloaded_original(model: str, merged, images) -> torch.Tensor:
    """The same prompts on the model before tuning."""
    import shutil

    orig = merged.parent / "original"
    shutil.copytree(model, orig)
    shutil.copy(merged / "clipfit.json", orig / "clipfit.json")
    return _reloaded(orig, images)


@pytest.mark.parametrize("name", SIGLIP_LIKE)
def test_a_siglip_export_gives_the_zero_shot_pipeline_the_same_scores(tiny_families, tiny_folder, tmp_path, capsys,
                                                                       name):
    """The merged folder is a checkpoint of the model's own class; transformers' pipeline reports SigLIP's sigmoid
    of each score, clipfit predict the softmax over the classes of the same scores."""
    from transformers import pipeline

    from clipfit.data.images import open_image

    run, merged, img = tmp_path / "run", tmp_path / "merged", tmp_path / "square.png"
    Image.open(f"{tiny_folder}/green/03.png").convert("RGB").crop((0, 0, 32, 32)).save(img)  # NaFlex: no resize
    assert main(["train", "--model", tiny_families[name], "--dataset", f"imagefolder:{tiny_folder}", "--method",
                 "zeroshot", "--shots", "2", "--quiet", "--out", str(run)]) == 0
    assert main(["export", str(run), "--merged", str(merged)]) == 0
    capsys.readouterr()
    probs = _predict(run, [str(img)], capsys)[0]
    bb = Backbone.from_pretrained(str(merged))
    assert type(bb.model).__name__ == bb.family.model_class and bb.family.name == name
    info = json.loads((merged / "clipfit.json").read_text())
    method = build_method("zeroshot", bb, CLASSES, info["hypothesis_template"])
    with torch.no_grad():
        x = eval_transform(bb.image_spec)(open_image(img))[None]
        scores = bb.logits(method.image_features(x), method.text_features())[0]
    clf = pipeline("zero-shot-image-classification", model=str(merged), device="cpu")
    got = {g["label"]: g["score"] for g in clf(Image.open(img), candidate_labels=CLASSES,
                                                hypothesis_template=info["hypothesis_template"])}
    torch.testing.assert_close(torch.tensor([got[c] for c in CLASSES]), scores.sigmoid(), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(probs, scores.softmax(-1), atol=2e-6, rtol=0)
    assert "sigmoid" in info["note"]


@pytest.mark.parametrize("name", ["clip", "metaclip_2", "siglip", "siglip2"])
@pytest.mark.parametrize("method,settings", [("clip_lora", {}), ("clip_adapter", {"alpha": 0.0}),
                                             ("tip_adapter", {"alpha": 0.0, "search": False, "views": 0})])
def test_methods_start_at_zero_shot_on_each_family(tiny_families, name, method, settings):
    """CLIP-LoRA (B = 0 at initialisation), CLIP-Adapter with alpha 0 and Tip-Adapter with alpha 0 (its cache
    filled) give the family's zero-shot scores."""
    import dataclasses

    from clipfit.method import METHODS

    bb = Backbone.from_pretrained(tiny_families[name])
    x = torch.stack([eval_transform(bb.image_spec)(im) for im in _images(name)])
    zs = build_method("zeroshot", bb, CLASSES, TEMPLATE)
    m = build_method(method, bb, CLASSES, TEMPLATE, dataclasses.replace(METHODS.get(method).config(), **settings))
    m.reset_parameters()
    with torch.no_grad():
        if method == "tip_adapter":  # the cache of the training features, one per class
            m.on_features(m.frozen_image_features(x), torch.arange(len(x)) % len(CLASSES))
        torch.testing.assert_close(m.logits(m.image_features(x), m.text_features()),
                                   zs.logits(zs.image_features(x), zs.text_features()), atol=1e-5, rtol=0)
        if method == "tip_adapter":  # the cache is live: alpha 1 changes the scores
            m.alpha.fill_(1.0)
            assert not torch.allclose(m.logits(m.image_features(x), m.text_features()),
                                      zs.logits(zs.image_features(x), zs.text_features()), atol=1e-3)
        if method == "clip_lora":  # its branches are live: a non-zero B changes the scores
            for _, branch in m._sites:
                torch.nn.init.normal_(branch.B, std=0.5)
            assert not torch.allclose(m.logits(m.image_features(x), m.text_features()),
                                      zs.logits(zs.image_features(x), zs.text_features()), atol=1e-3)

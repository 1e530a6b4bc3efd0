"""Model families: tiny random models of each build and reload offline, and each adapter's declarations are what
the model itself does (pooled position, image feature, scoring) and what hand counts of the tiny configs say."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clipfit.errors import ClipfitError
from clipfit.families import FAMILIES, ImageSpec, detect_family
from clipfit.families.archs import arch_model
from clipfit.families.tiny import make_tiny

WORDS = "a photo of the red green blue".split()
TEXTS = ["a photo of the red", "blue", "green photo with the an a"]
NAMES = ["clip", "metaclip_2", "siglip", "siglip2"]
H, LAYERS, FFN = 32, 2, 128  # make_tiny's defaults: hidden 32, 2 layers, FFN 4 x 32


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """name -> (model, tokenizer, image processor), each saved by make_tiny and loaded back with the Auto classes."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    out = {}
    for name in NAMES:
        d = make_tiny(name, tmp_path_factory.mktemp(name), words=WORDS)
        out[name] = (AutoModel.from_pretrained(d).eval(), AutoTokenizer.from_pretrained(d),
                     AutoImageProcessor.from_pretrained(d))
    return out


def _images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


def _pixels(images, spec: ImageSpec) -> torch.Tensor:
    """Normalised [B, 3, S, S] from square images of the model's size, as clipfit's transforms give them."""
    x = torch.stack([torch.tensor(np.asarray(im), dtype=torch.float32).permute(2, 0, 1) / 255 for im in images])
    return (x - torch.tensor(spec.mean)[:, None, None]) / torch.tensor(spec.std)[:, None, None]


@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_reloads_offline_as_its_family(tiny, name, tmp_path):
    from transformers import AutoConfig

    model, tok, proc = tiny[name]
    family = FAMILIES.get(name)
    assert type(model).__name__ == family.model_class
    assert detect_family(model.config) is family
    d = make_tiny(name, tmp_path, words=WORDS)
    assert detect_family(AutoConfig.from_pretrained(d)) is family  # from the saved config.json alone
    assert family.image_spec(proc).size == 32


@pytest.mark.parametrize("name", NAMES)
def test_pooled_position_is_where_the_model_pools(tiny, name):
    """Token embeddings in at the insertion point, pooled at the declared position: the model's own text features."""
    model, tok, _ = tiny[name]
    f = FAMILIES.get(name)
    t = f.tokenize(tok, TEXTS, f.max_text_length(model))
    with torch.no_grad():
        own = f.text_features(model, t)
        embeds = f.parts(model).token_embedding(t["input_ids"])
        mine = f.encode_text_embeds(model, embeds, t.get("attention_mask"), f.pooled_index(model, t["input_ids"]))
    torch.testing.assert_close(mine, own, atol=1e-5, rtol=0)
    assert not torch.allclose(own[0], own[1], atol=1e-3)  # the texts differ, so a wrong position would show


@pytest.mark.parametrize("name,start,fixed", [("clip", 1, False), ("metaclip_2", 1, False), ("siglip", 0, True),
                                              ("siglip2", 0, True)])
def test_tokenize_pads_as_the_family_was_trained(tiny, name, start, fixed):
    model, tok, _ = tiny[name]
    f = FAMILIES.get(name)
    t = f.tokenize(tok, TEXTS, f.max_text_length(model))
    if fixed:  # SigLIP: every prompt at the full length, padded on the right; the tower is not given the mask
        assert t["input_ids"].shape[1] == f.max_text_length(model) == 64 and t["attention_mask"][1].sum() < 64
        assert set(f.text_inputs(t)) == {"input_ids"}
        assert (f.pooled_index(model, t["input_ids"]) == 63).all()
        assert t["input_ids"][1, -1] == tok.pad_token_id  # a short prompt: the pooled last token is padding
    else:  # CLIP: padded to the longest prompt, with the mask; pooled at the end-of-text token
        assert t["input_ids"].shape[1] < 16 and t["attention_mask"][1].sum() < t["input_ids"].shape[1]
        eos = f.pooled_index(model, t["input_ids"])
        assert (t["input_ids"][torch.arange(3), eos] == model.config.text_config.eos_token_id).all()
    assert f.text_start(tok) == start  # where prompt methods put their context: after the start token, if any


@pytest.mark.parametrize("name", NAMES)
def test_image_features_and_the_feature_before_projection(tiny, name):
    model, _, proc = tiny[name]
    f = FAMILIES.get(name)
    images = _images()
    x = _pixels(images, f.image_spec(proc))
    with torch.no_grad():
        own = model.get_image_features(**proc(images=images, return_tensors="pt")).pooler_output
        mine = f.image_features(model, x)
        pooled = f.image_pooled(model, x)
        states = f.parts(model).vision.tower(**f.vision_inputs(model, x), output_hidden_states=True).hidden_states
    assert states[-1].shape[1] == f.vision_prefix + (32 // 8) ** 2  # a class token (CLIP) or none, then the patches
    torch.testing.assert_close(mine, own, atol=1e-5, rtol=0)  # siglip2: the patches cut in the processor's order
    projection = f.parts(model).vision.projection
    torch.testing.assert_close(pooled if projection is None else projection(pooled), mine, atol=1e-5, rtol=0)
    if projection is None:  # SigLIP: the attention-pooling head's output is the embedding
        assert f.parts(model).vision.pooler is not None


@pytest.mark.parametrize("name", NAMES)
def test_scoring_is_the_models_own_logits(tiny, name):
    model, tok, proc = tiny[name]
    f = FAMILIES.get(name)
    images = _images(2)
    t = f.tokenize(tok, TEXTS, f.max_text_length(model))
    with torch.no_grad():
        own = model(**f.text_inputs(t), **proc(images=images, return_tensors="pt")).logits_per_image
        img = F.normalize(f.image_features(model, _pixels(images, f.image_spec(proc))), dim=-1)
        mine = f.logits(model, img, F.normalize(f.text_features(model, t), dim=-1))
    torch.testing.assert_close(mine, own, atol=1e-4, rtol=0)
    if f.logit_bias:
        assert model.logit_bias.item() == -10.0  # the bias is in the scores (a scoring without it would fail)


# Hand counts on the tiny configs. Per layer: LayerNorms 2, q/k/v 3 Linears, FFN biases 4H (fc1) + H (fc2); bias of
# a layer: q, k, v, out (4H) + fc1 (4H) + fc2 (H) + 2 LayerNorms (2H) = 11H.
LAYER_BIAS = 11 * H
HAND = {  # name: (text LayerNorms, vision LayerNorms, text biases, vision biases)
    # CLIP text: 2/layer + final; image: pre, 2/layer, post; no bias in the patch conv or the projections
    "clip": (2 * LAYERS + 1, 2 * LAYERS + 2, LAYERS * LAYER_BIAS + H, LAYERS * LAYER_BIAS + 2 * H),
    # SigLIP text: + the head Linear's bias; image: no pre-LN, + the pooling head's LayerNorm; biases: patch
    # embedding H, post-LN H, head: attention in_proj 3H + out_proj H + LayerNorm H + MLP 4H + H
    "siglip": (2 * LAYERS + 1, 2 * LAYERS + 2, LAYERS * LAYER_BIAS + 2 * H, LAYERS * LAYER_BIAS + 2 * H + 10 * H),
}
HAND["metaclip_2"], HAND["siglip2"] = HAND["clip"], HAND["siglip"]


@pytest.mark.parametrize("name", NAMES)
def test_declared_parts_match_hand_counts(tiny, name):
    model, _, _ = tiny[name]
    f = FAMILIES.get(name)
    p = f.parts(model)
    text_ln, vision_ln, text_bias, vision_bias = HAND[name]
    for tower, n_ln in (("text", text_ln), ("vision", vision_ln)):
        tp = p.tower(tower)
        assert len(tp.layers) == LAYERS and len(tp.qkv()) == LAYERS and len(tp.ffn()) == LAYERS
        assert all(lin.in_features == lin.out_features == H for qkv in tp.qkv() for lin in qkv)
        assert len(tp.layernorms()) == n_ln
        assert f.count(model, f"{tower}_layernorm") == 2 * H * n_ln
        assert f.count(model, f"{tower}_ffn_out_bias") == LAYERS * H
        assert f.count(model, f"{tower}_ffn_bias") == LAYERS * (FFN + H)
    assert f.count(model, "text_bias") == text_bias
    assert f.count(model, "vision_bias") == vision_bias
    assert (p.vision.pre_norm is None) == name.startswith("siglip")
    assert f.count(model, "text_all") + f.count(model, "vision_all") + 1 + (p.logit_bias is not None) == \
        f.count(model, "all")  # every parameter is in one tower, but the scale (and bias)


def test_base_architectures_count_like_the_papers():
    """CLIPFit = text FFN output biases + image LayerNorms: CLIP ViT-B/16 46,080 (the CLIPFit paper); SigLIP base: a
    768-wide text tower (12 x 768) and 26 image LayerNorms (24 in the layers, post, pooling head) x 2 x 768."""
    from transformers import CLIPModel

    from clipfit.backbone import clip_config

    with torch.device("meta"):
        clip = CLIPModel(clip_config("ViT-B/16"))
    f = FAMILIES.get("clip")
    assert f.count(clip, "text_ffn_out_bias") + f.count(clip, "vision_layernorm") == 46_080
    for arch in ("siglip-base-patch16-224", "siglip2-base-patch16-224"):
        f, model = arch_model(arch)
        assert f.name == "siglip"
        assert f.count(model, "text_ffn_out_bias") == 12 * 768
        assert f.count(model, "vision_layernorm") == 26 * 2 * 768
    assert sum(q.numel() for q in arch_model("siglip-base-patch16-224")[1].parameters()) == 203_155_970
    with pytest.raises(ClipfitError, match="siglip-base-patch16-224"):
        arch_model("siglip-huge")


def test_unknown_family_is_refused_in_one_line():
    with pytest.raises(ClipfitError) as e:
        detect_family({"model_type": "blip", "architectures": ["BlipModel"]})
    msg = str(e.value)
    assert "\n" not in msg and "'blip'" in msg
    for f in map(FAMILIES.get, NAMES):
        assert f.model_class in msg


def test_variants_the_adapters_do_not_cover_are_refused():
    from transformers import Siglip2Config, SiglipConfig

    with pytest.raises(ClipfitError, match="no attention-pooling head"):
        detect_family(SiglipConfig(vision_config={"vision_use_head": False}))
    with pytest.raises(ClipfitError, match="num_patches is 200, not a square"):
        detect_family(Siglip2Config(vision_config={"num_patches": 200}))


def test_image_specs_read_each_processor():
    from transformers import CLIPImageProcessor, Siglip2ImageProcessor, SiglipImageProcessor

    clip = FAMILIES.get("clip").image_spec(CLIPImageProcessor())
    assert (clip.size, clip.resize, clip.crop, clip.resample) == (224, 224, True, "bicubic")
    siglip = FAMILIES.get("siglip").image_spec(SiglipImageProcessor())
    assert (siglip.size, siglip.crop, siglip.mean) == (224, False, (0.5, 0.5, 0.5))
    naflex = FAMILIES.get("siglip2").image_spec(Siglip2ImageProcessor())  # 256 patches of 16: 16 x 16 of them
    assert (naflex.size, naflex.crop, naflex.resample) == (256, False, "bilinear")

"""OpenCLIP -> transformers conversion: a tiny random transformers CLIP is written in OpenCLIP's layout (keys and
shapes as OpenCLIP's CLIP class defines them), converted back, and gives the same features; other architectures
are refused in one line."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from clipfit.convert_openclip import OPENAI_MEAN, WIDE_IMAGE_HEADS, _heads, convert_openclip
from clipfit.errors import ClipfitError
from clipfit.families import detect_family
from clipfit.tokenizer import build_tokenizer

WORDS = "a photo of the red green blue".split()
TEXTS = ["a photo of the red", "blue", "green photo of a the"]
TEXT_W, VISION_W, EMBED, LAYERS = 128, 192, 48, 2  # distinct widths: a transposed or swapped tensor cannot fit


def eos_last_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose end-of-text token has the largest id, as in CLIP's BPE."""
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", *WORDS, "<start>", "<end>"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<start> $A <end>",
                                                       special_tokens=[("<start>", vocab["<start>"]),
                                                                       ("<end>", vocab["<end>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<start>", eos_token="<end>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=16)


def tiny_clip(tok, act: str = "quick_gelu"):
    from transformers import CLIPConfig, CLIPModel

    ids = dict(eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id)
    cfg = CLIPConfig(text_config=dict(vocab_size=len(tok), hidden_size=TEXT_W, intermediate_size=3 * TEXT_W,
                                      num_hidden_layers=LAYERS, num_attention_heads=TEXT_W // 64,
                                      max_position_embeddings=16, hidden_act=act, **ids),
                     vision_config=dict(hidden_size=VISION_W, intermediate_size=2 * VISION_W, num_hidden_layers=LAYERS,
                                        num_attention_heads=VISION_W // 64, image_size=32, patch_size=8, hidden_act=act),
                     projection_dim=EMBED)
    torch.manual_seed(0)
    return CLIPModel(cfg).eval()


def to_openclip(model) -> dict[str, torch.Tensor]:
    """The model's weights under OpenCLIP's names and shapes (its CLIP class: nn.MultiheadAttention with q, k, v
    stacked in in_proj_*, projections as [width, embed] matrices applied as x @ proj, a 0-d logit_scale)."""
    sd = model.state_dict()
    oc: dict[str, torch.Tensor] = {}

    def blocks(hf: str, openclip: str) -> None:
        for i in range(LAYERS):
            h, o = f"{hf}.{i}.", f"{openclip}.{i}."
            for kind in ("weight", "bias"):
                oc[f"{o}attn.in_proj_{kind}"] = torch.cat([sd[f"{h}self_attn.{x}_proj.{kind}"] for x in "qkv"])
                for oname, hname in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                                     ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                    oc[f"{o}{oname}.{kind}"] = sd[f"{h}{hname}.{kind}"]

    oc["visual.conv1.weight"] = sd["vision_model.embeddings.patch_embedding.weight"]
    oc["visual.class_embedding"] = sd["vision_model.embeddings.class_embedding"]
    oc["visual.positional_embedding"] = sd["vision_model.embeddings.position_embedding.weight"]
    for kind in ("weight", "bias"):
        oc[f"visual.ln_pre.{kind}"] = sd[f"vision_model.pre_layrnorm.{kind}"]
        oc[f"visual.ln_post.{kind}"] = sd[f"vision_model.post_layernorm.{kind}"]
        oc[f"ln_final.{kind}"] = sd[f"text_model.final_layer_norm.{kind}"]
    blocks("vision_model.encoder.layers", "visual.transformer.resblocks")
    oc["visual.proj"] = sd["visual_projection.weight"].t()
    oc["token_embedding.weight"] = sd["text_model.embeddings.token_embedding.weight"]
    oc["positional_embedding"] = sd["text_model.embeddings.position_embedding.weight"]
    blocks("text_model.encoder.layers", "transformer.resblocks")
    oc["text_projection"] = sd["text_projection.weight"].t()
    oc["logit_scale"] = sd["logit_scale"].reshape(())
    # OpenCLIP's shapes
    assert oc["visual.proj"].shape == (VISION_W, EMBED) and oc["text_projection"].shape == (TEXT_W, EMBED)
    assert oc["visual.positional_embedding"].shape == (1 + 4 * 4, VISION_W) and oc["logit_scale"].dim() == 0
    assert oc["transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * TEXT_W, TEXT_W)
    return {k: v.contiguous().clone() for k, v in oc.items()}


def save(oc: dict[str, torch.Tensor], path, layout: str):
    if layout == "safetensors":
        from safetensors.torch import save_file

        save_file(oc, str(path))
    elif layout == "bin":
        torch.save(oc, path)
    else:  # an OpenCLIP training checkpoint: nested, with DistributedDataParallel's prefix
        torch.save({"epoch": 32, "name": "run", "state_dict": {f"module.{k}": v for k, v in oc.items()}}, path)
    return path


def features(model, tok, pixels):
    with torch.no_grad():
        t = tok(TEXTS, padding=True, return_tensors="pt")
        text = model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).pooler_output
        return model.get_image_features(pixel_values=pixels).pooler_output, text


@pytest.fixture(scope="module")
def tok_dirs(tmp_path_factory):
    """Tokenizer folders: CLIP-like (end-of-text = largest id) and the project's word-level one (end-of-text 3)."""
    out = {}
    for name, tok in (("eos_last", eos_last_tokenizer()), ("eos_3", build_tokenizer(WORDS))):
        d = tmp_path_factory.mktemp(name)
        tok.save_pretrained(d)
        out[name] = (str(d), tok)
    return out


@pytest.mark.parametrize("layout,suffix", [("safetensors", ".safetensors"), ("bin", ".bin"),
                                           ("training", ".pt")])
def test_converted_checkpoint_gives_the_original_features(tmp_path, tok_dirs, layout, suffix):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    tok_dir, tok = tok_dirs["eos_last"]
    original = tiny_clip(tok)
    ckpt = save(to_openclip(original), tmp_path / f"open_clip{suffix}", layout)
    out = convert_openclip(ckpt, tmp_path / "converted", activation="quick_gelu", tokenizer=tok_dir)
    model = AutoModel.from_pretrained(out).eval()
    assert type(model).__name__ == "CLIPModel" and detect_family(model.config).name == "clip"
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for mine, theirs in zip(features(model, AutoTokenizer.from_pretrained(out), pixels),
                            features(original, tok, pixels)):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    proc = AutoImageProcessor.from_pretrained(out)
    assert tuple(proc.image_mean) == OPENAI_MEAN and proc.crop_size["height"] == 32
    assert model.logit_scale.item() == pytest.approx(original.logit_scale.item())


def test_eos_id_not_the_largest_converts_to_metaclip2(tmp_path, tok_dirs):
    """A tokenizer whose end-of-text is not its largest id (MetaCLIP 2's XLM-V: id 2) pools at that id, which
    transformers' CLIPModel does not do for every id: the folder is a MetaClip2Model, with the same features."""
    from transformers import AutoModel

    tok_dir, tok = tok_dirs["eos_3"]
    original = tiny_clip(tok)
    ckpt = save(to_openclip(original), tmp_path / "m.safetensors", "safetensors")
    model = AutoModel.from_pretrained(convert_openclip(ckpt, tmp_path / "out", activation="quick_gelu",
                                                       tokenizer=tok_dir)).eval()
    assert type(model).__name__ == "MetaClip2Model"
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    for mine, theirs in zip(features(model, tok, pixels), features(original, tok, pixels)):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


def test_the_activation_given_is_the_models(tmp_path, tok_dirs):
    """The weights do not say QuickGELU or GELU; the wrong one changes the features, so it must be given."""
    from transformers import AutoModel

    tok_dir, tok = tok_dirs["eos_last"]
    original = tiny_clip(tok, act="quick_gelu")
    ckpt = save(to_openclip(original), tmp_path / "m.safetensors", "safetensors")
    model = AutoModel.from_pretrained(convert_openclip(ckpt, tmp_path / "out", activation="gelu",
                                                       tokenizer=tok_dir)).eval()
    assert model.config.vision_config.hidden_act == model.config.text_config.hidden_act == "gelu"
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(features(model, tok, pixels)[0], features(original, tok, pixels)[0], atol=1e-4)
    with pytest.raises(ClipfitError, match="quick_gelu"):
        convert_openclip(ckpt, tmp_path / "out2", activation="relu", tokenizer=tok_dir)


def test_heads_follow_openclips_head_widths():
    assert _heads(768, None, "vision", WIDE_IMAGE_HEADS) == 12  # ViT-B: head width 64
    assert _heads(1280, None, "vision", WIDE_IMAGE_HEADS) == 16  # ViT-H-14: head width 80
    assert _heads(1664, None, "vision", WIDE_IMAGE_HEADS) == 16  # ViT-bigG-14: head width 104
    assert _heads(1280, None, "text", {}) == 20  # bigG's text tower: 20 heads of 64
    assert _heads(1280, 10, "vision", WIDE_IMAGE_HEADS) == 10
    with pytest.raises(ClipfitError, match="vision_heads"):
        _heads(100, None, "vision", WIDE_IMAGE_HEADS)


@pytest.mark.parametrize("change,found", [
    (lambda oc: oc.update({"visual.layer1.0.conv1.weight": torch.zeros(1)}), "ModifiedResNet"),
    (lambda oc: oc.update({"visual.trunk.blocks.0.attn.qkv.weight": torch.zeros(1)}), "timm image tower"),
    (lambda oc: oc.update({"text.transformer.embeddings.word_embeddings.weight": torch.zeros(1)}),
     "Hugging Face text tower"),
    (lambda oc: oc.update({"visual.attn_pool.query": torch.zeros(1)}), "attentional pooler"),
    (lambda oc: oc.update({"logit_bias": torch.zeros(())}), "logit bias"),
    (lambda oc: oc.pop("text_projection"), "no text_projection"),
    (lambda oc: oc.update({"transformer.resblocks.0.ls_1.gamma": torch.ones(TEXT_W)}), "ls_1.gamma"),
])
def test_other_architectures_are_refused_in_one_line(tmp_path, tok_dirs, change, found):
    tok_dir, tok = tok_dirs["eos_last"]
    oc = to_openclip(tiny_clip(tok))
    change(oc)
    ckpt = save(oc, tmp_path / "m.safetensors", "safetensors")
    with pytest.raises(ClipfitError, match=found) as e:
        convert_openclip(ckpt, tmp_path / "out", activation="gelu", tokenizer=tok_dir)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_bad_inputs_get_one_line(tmp_path, tok_dirs):
    tok_dir, tok = tok_dirs["eos_last"]
    ckpt = save(to_openclip(tiny_clip(tok)), tmp_path / "m.bin", "bin")
    with pytest.raises(ClipfitError, match="carries no tokenizer"):
        convert_openclip(ckpt, tmp_path / "out", activation="gelu")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("a user's file")
    with pytest.raises(ClipfitError, match="not an empty folder"):
        convert_openclip(ckpt, tmp_path / "taken", activation="gelu", tokenizer=tok_dir)
    assert (tmp_path / "taken" / "mine.txt").read_text() == "a user's file"
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ClipfitError, match="cannot read checkpoint"):
        convert_openclip(tmp_path / "junk.pt", tmp_path / "out", activation="gelu", tokenizer=tok_dir)
    with pytest.raises(ClipfitError, match="checkpoint not found"):
        convert_openclip(tmp_path / "none.pt", tmp_path / "out", activation="gelu", tokenizer=tok_dir)
    (tmp_path / "empty").mkdir()  # an empty folder is a fine target
    assert detect_family(__import__("transformers").AutoConfig.from_pretrained(
        convert_openclip(ckpt, tmp_path / "empty", activation="gelu", tokenizer=tok_dir))).name == "clip"


def test_command_converts_a_folder_that_trains_predicts_and_exports(tmp_path, tok_dirs, tiny_folder, capsys):
    from clipfit.cli import main

    tok_dir, tok = tok_dirs["eos_last"]
    ckpt = save(to_openclip(tiny_clip(tok)), tmp_path / "open_clip.safetensors", "safetensors")
    out = tmp_path / "converted"
    assert main(["convert-openclip", str(ckpt), str(out), "--activation", "quick_gelu", "--tokenizer", tok_dir,
                 "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    run, img = tmp_path / "run", f"{tiny_folder}/red/00.png"
    assert main(["train", "--model", str(out), "--dataset", f"imagefolder:{tiny_folder}", "--method", "clipfit",
                 "--shots", "2", "--set", "epochs=1", "--quiet", "--out", str(run)]) == 0
    assert main(["predict", str(run), img, "--json"]) == 0
    assert main(["export", str(run), "--merged", str(tmp_path / "merged")]) == 0
    capsys.readouterr()


def test_command_refuses_an_unsafe_out_in_one_line(tmp_path, tok_dirs, capsys):
    """OUT may not be a file, a folder under a file, or a folder holding anything (the tokenizer's, the
    checkpoint's): nothing there is touched."""
    from clipfit.cli import main

    tok_dir, tok = tok_dirs["eos_last"]
    ckpt = save(to_openclip(tiny_clip(tok)), tmp_path / "m.safetensors", "safetensors")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    tok_files = sorted(p.name for p in Path(tok_dir).iterdir())
    for out, said in ((ckpt, "not an empty folder"), (tmp_path / "m.safetensors" / "sub", "is a file, not a folder"),
                      (tmp_path, "not an empty folder"), (tok_dir, "not an empty folder")):
        assert main(["convert-openclip", str(ckpt), str(out), "--activation", "gelu", "--tokenizer", tok_dir]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and said in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in Path(tok_dir).iterdir()) == tok_files
    assert main(["convert-openclip", str(ckpt), str(tmp_path / "o"), "--activation", "gelu", "--tokenizer", tok_dir,
                 "--mean", "0.5,0.5"]) == 2
    assert "--mean needs 3 numbers" in capsys.readouterr().err

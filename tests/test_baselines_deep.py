"""Deep-prompt baselines: MaPLe and PromptSRC (parameter counts, what trains, where the hooks put the prompts, the
PromptSRC losses and Gaussian prompt aggregation, recipes by protocol), on tiny random CLIPs."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from clipfit.backbone import Backbone, make_random_clip, parameter_group
from clipfit.cli import main
from clipfit.data.catalogue import load_task
from clipfit.engine.loop import forward_step
from clipfit.engine.run import RunSpec, resolve_configs, train_run
from clipfit.errors import ClipfitError
from clipfit.io import load_tensors
from clipfit.method import METHODS, build_method
from clipfit.method.promptsrc import GPA_PREFIX, gpa_weights, kl_to_teacher
from conftest import set_args
from test_methods_peft import FAST, _images, _spec


@pytest.fixture(scope="module")
def deep_clip(tmp_path_factory) -> str:
    """A tiny random CLIP with 4 layers per tower (so a depth of 3 leaves a layer without new prompts)."""
    return make_random_clip(tmp_path_factory.mktemp("deep_clip"), words="a photo of the red green blue".split(), layers=4)


def _method(model, tiny_folder, name, **settings):
    task = load_task(f"imagefolder:{tiny_folder}")
    cfg = METHODS.get(name).config()
    for k, v in settings.items():
        setattr(cfg, k, v)
    return build_method(name, Backbone.from_pretrained(model), task.classnames, task.template, cfg)


@pytest.mark.parametrize("cli_args, expected", [
    (["maple"], 3555072),  # 9 x 2 x 512 + 9 x (512 x 768 + 768)
    (["maple", "--set", "depth=3"], 1185024),  # the cross-dataset depth
    (["promptsrc"], 46080),  # 9 x 4 x 512 + 9 x 4 x 768
])
def test_params_counts_for_vit_b16(cli_args, expected, capsys):
    assert main(["params", *cli_args, "--arch", "ViT-B/16"]) == 0
    assert capsys.readouterr().out.strip() == str(expected)


def _capture(layers, outputs_of=()):
    """Pre-hooks recording every layer's input hidden states (registered after the method's, so they see the prompts
    it inserted) and forward hooks recording the outputs of the layers in `outputs_of`."""
    seen: dict = {}
    handles = [layer.register_forward_pre_hook(lambda m, a, j=j: seen.__setitem__(("in", j), a[0].detach()))
               for j, layer in enumerate(layers)]
    handles += [layers[j].register_forward_hook(lambda m, a, o, j=j: seen.__setitem__(("out", j), o.detach()))
                for j in outputs_of]
    return seen, handles


def test_maple_hooks_put_the_prompts_where_the_paper_says(deep_clip, tiny_folder):
    m = _method(deep_clip, tiny_folder, "maple", depth=3)  # J = 3 of 4 layers, n_ctx = 2
    model, n, J = m.backbone.model, 2, 3
    assert m.text_prompts.shape[0] == len(m.coupling) == J
    vis, txt = model.vision_model, model.text_model
    v_seen, v_handles = _capture(vis.encoder.layers, outputs_of=[J - 1])
    t_seen, t_handles = _capture(txt.encoder.layers, outputs_of=[J - 1])
    x = _images(tiny_folder)
    with torch.no_grad():
        m.image_features(x)
        m.text_features()
        visual = [m.coupling[j](m.text_prompts[j]) for j in range(J)]
        n_patches = vis.embeddings.num_patches
        # image: 2 tokens F_0(P_0) appended after the positional embedding, before the pre-LayerNorm
        first = v_seen[("in", 0)]
        assert first.shape[1] == 1 + n_patches + n
        assert torch.allclose(first[:, -n:], vis.pre_layrnorm(visual[0]).expand(len(x), -1, -1), atol=1e-6)
        for j in range(1, J):  # replaced by F_j(P_j) before layers 2..J, the same for every image
            assert torch.equal(v_seen[("in", j)][:, -n:], visual[j].expand(len(x), -1, -1))
        # layer J + 1 gets what layer J made of them (not replaced)
        assert torch.equal(v_seen[("in", J)], v_seen[("out", J - 1)])
        assert not torch.allclose(v_seen[("in", J)][:, -n:], visual[J - 1].expand(len(x), -1, -1))
        # text: rows 1..2 are P_0 (+ position embeddings) at the input, P_j before layers 2..J
        pos = txt.embeddings.position_embedding.weight[1:1 + n]
        assert torch.allclose(t_seen[("in", 0)][:, 1:1 + n], (m.text_prompts[0] + pos).expand(3, -1, -1), atol=1e-6)
        for j in range(1, J):
            assert torch.equal(t_seen[("in", j)][:, 1:1 + n], m.text_prompts[j].expand(3, -1, -1))
        assert torch.equal(t_seen[("in", J)], t_seen[("out", J - 1)])
    for h in v_handles + t_handles:
        h.remove()


def test_promptsrc_prompts_are_independent_per_tower(deep_clip, tiny_folder):
    m = _method(deep_clip, tiny_folder, "promptsrc", depth=2, depth_vision=3, n_ctx_vision=3)
    vis = m.backbone.model.vision_model
    v_seen, handles = _capture(vis.encoder.layers)
    x = _images(tiny_folder)
    with torch.no_grad():
        m.image_features(x)
    assert m.text_prompts.shape[:2] == (2, 4) and m.vision_prompts.shape[:2] == (3, 3)
    assert v_seen[("in", 0)].shape[1] == 1 + vis.embeddings.num_patches + 3
    for j in (1, 2):
        assert torch.equal(v_seen[("in", j)][:, -3:], m.vision_prompts[j].detach().expand(len(x), -1, -1))
    for h in handles:
        h.remove()


@pytest.mark.parametrize("method", ["maple", "promptsrc"])
def test_with_prompts_off_the_towers_are_plain_clip(method, deep_clip, tiny_folder):
    """Outside text_features/image_features the hooks do nothing (PromptSRC's frozen teacher relies on it); the
    shallow text context initialised from 'a photo of a' with no deeper prompts gives that template's zero-shot
    features (MaPLe: 'a photo' learned, 'of a' kept as words)."""
    m = _method(deep_clip, tiny_folder, method, depth=1)
    plain = Backbone.from_pretrained(deep_clip)
    x = _images(tiny_folder)
    with torch.no_grad():
        assert torch.equal(m.backbone.encode_image(x), plain.encode_image(x))
        zs = plain.encode_text(plain.tokenize([f"a photo of a {c}." for c in m.classnames]))
        assert torch.allclose(m.text_features(), zs, atol=1e-6)
        assert not torch.allclose(m.image_features(x), plain.encode_image(x), atol=1e-4)  # the image prompts act
        m.remove()
        assert torch.allclose(m.image_features(x), plain.encode_image(x), atol=1e-6)


def test_maple_can_drop_the_init_words_it_does_not_learn(deep_clip, tiny_folder):
    keep = _method(deep_clip, tiny_folder, "maple")
    drop = _method(deep_clip, tiny_folder, "maple", keep_init_words=False)
    tok = keep.backbone.tokenizer
    assert tok.convert_ids_to_tokens(keep._ids[0][:5].tolist())[1:3] == ["of", "a"]  # [SOS] | of a blue .
    assert torch.equal(drop._ids[:, 1:], keep._ids[:, 3:])  # [SOS] | blue .
    assert torch.equal(drop.text_prompts[0], keep.text_prompts[0])  # 'a photo' either way
    with pytest.raises(ClipfitError, match="n_ctx=0"):
        _method(deep_clip, tiny_folder, "maple", n_ctx=0)


def test_gpa_weights_and_aggregate_on_the_spec_example(tiny_clip, tiny_folder):
    w = gpa_weights(3, 2.0, 1.0)
    assert [round(float(v), 5) for v in w] == [0.27407, 0.45186, 0.27407]
    assert float(gpa_weights(2, 15.0, 0.1)[-1]) == 1.0  # a mean far outside the epochs: no 0/0
    m = _method(tiny_clip, tiny_folder, "promptsrc", gpa_mean=2.0, gpa_std=1.0)
    frozen = {n: p.detach().clone() for n, p in m.backbone.model.named_parameters()}
    with torch.no_grad():
        m.text_prompts.fill_(0.0)
        m.vision_prompts.fill_(0.0)
    m.on_epoch_end(1, 3)
    state = m.tuned_state()  # what the checkpoint holds after epoch 1: the running sum included
    assert set(state) == {"text_prompts", "vision_prompts", GPA_PREFIX + "text_prompts", GPA_PREFIX + "vision_prompts"}
    resumed = _method(tiny_clip, tiny_folder, "promptsrc", gpa_mean=2.0, gpa_std=1.0)
    resumed.load_tuned(state)  # --resume continues the sum
    for epoch, value in ((2, 1.0), (3, 2.0)):
        with torch.no_grad():
            resumed.text_prompts.fill_(value)
            resumed.vision_prompts.fill_(value)
        resumed.on_epoch_end(epoch, 3)
    assert torch.allclose(resumed.text_prompts, torch.ones_like(resumed.text_prompts))
    assert torch.allclose(resumed.vision_prompts, torch.ones_like(resumed.vision_prompts))
    resumed.on_train_end()
    assert set(resumed.tuned_state()) == {"text_prompts", "vision_prompts"}
    assert all(torch.equal(p, frozen[n]) for n, p in resumed.backbone.model.named_parameters())  # never frozen weights
    once = _method(tiny_clip, tiny_folder, "promptsrc", gpa_mean=2.0, gpa_std=1.0)
    for epoch, value in ((1, 1.0), (2, 0.0), (3, 0.0)):  # the epochs' weights, not a plain mean (which gives 1/3)
        with torch.no_grad():
            once.text_prompts.fill_(value)
        once.on_epoch_end(epoch, 3)
    assert torch.allclose(once.text_prompts, torch.full_like(once.text_prompts, 0.27407), atol=1e-5)


def test_kl_term_is_zero_for_identical_logits():
    z = torch.randn(5, 7)
    assert float(kl_to_teacher(z, z.clone())) == pytest.approx(0.0, abs=1e-7)
    t = torch.randn(5, 7)
    p, q = t.softmax(-1), z.softmax(-1)
    assert float(kl_to_teacher(z, t)) == pytest.approx(float((p * (p / q).log()).sum() / 35), rel=1e-5)


def test_promptsrc_losses_match_a_hand_computation(deep_clip, tiny_folder):
    templates = ["a photo of a {}.", "a photo of the {}."]
    m = _method(deep_clip, tiny_folder, "promptsrc", teacher_templates="|".join(templates))
    m.on_train_start()
    plain = Backbone.from_pretrained(deep_clip)
    x = _images(tiny_folder)  # 3 images of each class, in class order
    y = torch.arange(3).repeat_interleave(3)
    m.train()
    step = forward_step(m, m.image_features, x, y, None, torch.device("cpu"), "fp32")  # the engine's forward
    feats, text, logits = step.image, step.text, step.logits
    total, parts = m.loss(step)
    with torch.no_grad():
        f_zs = plain.encode_image(x)  # the frozen image tower
        t_zs = F.normalize(torch.stack([plain.encode_text(plain.tokenize([t.format(c) for c in m.classnames]),
                                                          normalize=False) for t in templates]).mean(0), dim=-1)
        zs_logits = plain.logit_scale * f_zs @ t_zs.t()
    l_text, l_image = (text - t_zs).abs().mean(), (feats - f_zs).abs().mean()
    kl = kl_to_teacher(logits, zs_logits)
    assert parts["l1_text"] == pytest.approx(float(l_text.detach()), rel=1e-5)
    assert parts["l1_image"] == pytest.approx(float(l_image.detach()), rel=1e-5) and parts["l1_image"] > 0
    assert parts["kl"] == pytest.approx(float(kl.detach()), rel=1e-4)
    expected = F.cross_entropy(logits, y) + 25 * l_text + 10 * l_image + kl
    assert float(total.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    total.backward()
    assert m.text_prompts.grad is not None and m.vision_prompts.grad is not None


def test_promptsrc_teacher_stays_frozen_when_layernorms_train(deep_clip, tiny_folder):
    m = _method(deep_clip, tiny_folder, "promptsrc", layernorm=True, layernorm_tower="vision")
    m.on_train_start()
    with torch.no_grad():
        for n in parameter_group(m.backbone.model, "vision_layernorm"):
            m.backbone.model.get_parameter(n).add_(0.3)
    x = _images(tiny_folder)
    with torch.no_grad():
        assert torch.allclose(m.teacher_image_features(x), Backbone.from_pretrained(deep_clip).encode_image(x), atol=1e-6)
        assert not torch.allclose(m.backbone.encode_image(x), m.teacher_image_features(x), atol=1e-4)


@pytest.mark.parametrize("method", ["maple", "promptsrc"])
def test_every_command_works(method, deep_clip, tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    train = ["train", "--model", deep_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "2", "--quiet",
             "--method", method, "--subsample", "base", "--json", *set_args({**FAST, "batch_size": 2})]
    assert main([*train, "--out", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["best_epoch"] == 2  # the recipe tests the last epoch
    assert json.loads((out / "config.json").read_text())["train_config"]["select"] == "last"
    assert main(["eval", str(out), "--subsample", "new", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] > 0
    img = f"{tiny_folder}/blue/00.png"
    assert main(["predict", str(out), img, "--classes", "red,green,blue", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["predictions"][0]["top"]) == 3
    assert main(["export", str(out), "--merged", str(tmp_path / "merged")]) == 2
    assert "cannot be merged" in capsys.readouterr().err


def test_interrupted_promptsrc_run_resumes_with_its_gpa_sum(deep_clip, tiny_folder, tmp_path, monkeypatch):
    from clipfit.engine.rundir import RunDir

    real = RunDir.save_checkpoint

    def crash_after_first(self, tuned, *a, **kw):
        real(self, tuned, *a, **kw)
        assert GPA_PREFIX + "text_prompts" in tuned  # the checkpoint carries the running sum
        raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", crash_after_first)
    spec = _spec(deep_clip, tiny_folder, "promptsrc", {"epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        train_run(spec, tmp_path / "run", progress=False)
    monkeypatch.setattr(RunDir, "save_checkpoint", real)
    m = train_run(spec, tmp_path / "run", progress=False, resume=True)
    assert [h["epoch"] for h in m["history"]] == [1, 2, 3]
    assert not any(k.startswith(GPA_PREFIX) for k in load_tensors(tmp_path / "run" / "tuned.safetensors"))


def _configs(method, protocol, dataset="eurosat"):
    return resolve_configs(RunSpec(dataset=dataset, method=method, protocol=protocol, shots=16))


def test_recipes_by_protocol():
    mcfg, tcfg = _configs("maple", "base2new")
    assert (tcfg.optimizer, tcfg.lr, tcfg.batch_size, tcfg.epochs, tcfg.warmup_epochs, tcfg.warmup_lr, tcfg.select,
            mcfg.depth, mcfg.n_ctx) == ("sgd", 0.0035, 4, 5, 1, 1e-5, "last", 9, 2)
    mcfg, tcfg = _configs("maple", "crossdataset", "imagenet")
    assert (mcfg.depth, tcfg.lr, tcfg.epochs) == (3, 0.0026, 2)
    assert _configs("maple", "fewshot")[1].epochs == 50
    mcfg, tcfg = _configs("promptsrc", "base2new")
    assert (tcfg.lr, tcfg.batch_size, tcfg.epochs, tcfg.select, mcfg.gpa_mean, mcfg.gpa_std) == (0.0025, 4, 20, "last", 15, 1)
    mcfg, tcfg = _configs("promptsrc", "fewshot")  # EuroSAT: the sharp GPA
    assert (tcfg.epochs, mcfg.gpa_mean, mcfg.gpa_std) == (50, 45, 5)
    assert (_configs("promptsrc", "fewshot", "imagenet")[0].gpa_mean, _configs("promptsrc", "fewshot", "caltech")[0].gpa_std) == (30, 30)
    mcfg, tcfg = _configs("promptsrc", "domainshift", "imagenet")
    assert (mcfg.depth, mcfg.depth_vision, mcfg.gpa_mean, mcfg.gpa_std, tcfg.epochs) == (3, 3, 6, 10, 20)

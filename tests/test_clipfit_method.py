"""CLIPFit end to end on a tiny random CLIP: what trains, the loss, saving, reloading, the commands."""
from __future__ import annotations

import importlib.metadata
import json

import pytest
import torch

from clipfit.backbone import Backbone
from clipfit.cli import main
from clipfit.data.catalogue import load_task
from clipfit.engine.loop import pick_device
from clipfit.engine.run import RunSpec, load_run, train_run
from clipfit.method import Step, build_method
from clipfit.method.clipfit import CLIPFitConfig
from conftest import interrupt_after_two_checkpoints, set_args

FAST = {"epochs": 3, "batch_size": 4, "lr": 0.05, "warmup_epochs": 0}


def _spec(tiny_clip, tiny_folder, **kw):
    kw = {"shots": 4, "seed": 1, "settings": FAST, **kw}
    return RunSpec(dataset=f"imagefolder:{tiny_folder}", model=tiny_clip, **kw)


def test_kd_term_moves_the_loss(tiny_clip, tiny_folder):
    task = load_task(f"imagefolder:{tiny_folder}")
    losses = {}
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for beta in (0.0, 8.0):
        bb = Backbone.from_pretrained(tiny_clip)
        m = build_method("clipfit", bb, task.classnames, task.template, CLIPFitConfig(beta=beta))
        m.on_train_start()
        with torch.no_grad():  # move the text biases so the tuned features differ from zero-shot
            for n, p in m.trainable().items():
                if "text_model" in n:
                    p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
        text, image = m.text_features(), m.image_features(x)
        loss, parts = m.loss(Step(x, torch.tensor([0, 1, 2, 0]), text, image, m.logits(image, text)))
        losses[beta] = float(loss.detach())
        if beta:
            assert parts["kd"] > 1e-4
            assert losses[beta] == pytest.approx(parts["ce"] + 8.0 * parts["kd"], rel=1e-5)
    assert losses[8.0] > losses[0.0] + 1e-4


def test_mse_regulariser_penalises_bias_change(tiny_clip, tiny_folder):
    task = load_task(f"imagefolder:{tiny_folder}")
    m = build_method("clipfit", Backbone.from_pretrained(tiny_clip), task.classnames, task.template,
                     CLIPFitConfig(reg="mse", mse_weight=1.0))
    m.on_train_start()
    x = torch.randn(2, 3, 32, 32)
    text, image = m.text_features(), m.image_features(x)
    step = Step(x, torch.tensor([0, 1]), text, image, m.logits(image, text))
    assert m.loss(step)[1]["mse"] == 0.0
    with torch.no_grad():
        next(p for n, p in m.trainable().items() if "fc2.bias" in n).add_(1.0)
    assert m.loss(step)[1]["mse"] > 0.0


def test_run_directory_records_items_and_refuses_overwrite(tiny_clip, tiny_folder, tmp_path):
    out = tmp_path / "run"
    train_run(_spec(tiny_clip, tiny_folder), out, progress=False)
    items = json.loads((out / "items.json").read_text())
    assert len(items["train"]) == 3 * 4 and len(items["val"]) == 3 * 4
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"] == "clipfit" and cfg["train_config"]["epochs"] == 3
    assert cfg["method_config"]["beta"] == 2.0  # few-shot protocol default (CLIPFit paper)
    assert cfg["clipfit_version"] == importlib.metadata.version("clipfit")
    with pytest.raises(Exception, match="already exists"):
        train_run(_spec(tiny_clip, tiny_folder), out, progress=False)
    # --items repeats the run on exactly the same images, whatever the seed
    train_run(_spec(tiny_clip, tiny_folder, seed=7, items=str(out / "items.json")), tmp_path / "again", progress=False)
    assert json.loads((tmp_path / "again" / "items.json").read_text()) == items


def test_commands_train_eval_predict_export(tiny_clip, tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "4", "--quiet"]
    sets = set_args(FAST)
    assert main(["train", *args, *sets, "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["trainable_parameters"] > 0 and 0 <= res["test"]["all"]["accuracy"] <= 100

    assert main(["eval", str(out), "--json", "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["accuracy"] == pytest.approx(res["test"]["all"]["accuracy"])

    img = f"{tiny_folder}/red/00.png"
    assert main(["predict", str(out), img, "--topk", "2", "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)["predictions"][0]
    assert len(pred["top"]) == 2 and pred["top"][0]["probability"] >= pred["top"][1]["probability"]

    merged = tmp_path / "merged"
    assert main(["export", str(out), "--merged", str(merged)]) == 0
    capsys.readouterr()
    from transformers import pipeline

    clf = pipeline("zero-shot-image-classification", model=str(merged), device="cpu")
    from PIL import Image

    got = clf(Image.open(img), candidate_labels=["red", "green", "blue"], hypothesis_template="a photo of a {}.")
    probs = {g["label"]: g["score"] for g in got}
    # the exported checkpoint is the tuned model: its probabilities match clipfit's own prediction
    run = load_run(out)
    from clipfit.engine.use import predict_images

    ours = {t["class"]: t["probability"] for t in predict_images(run, [img], ["red", "green", "blue"], topk=3)[0]["top"]}
    for k in probs:
        assert probs[k] == pytest.approx(ours[k], abs=1e-3)


def test_user_errors_are_one_line(tiny_clip, tiny_folder, tmp_path, capsys):
    assert main(["train", "--model", str(tmp_path / "nope"), "--dataset", f"imagefolder:{tiny_folder}", "--shots", "4",
                 "--out", str(tmp_path / "r")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("clipfit: error:") and "nope" in lines[-1]
    assert all(line.startswith("clipfit: ") for line in lines)  # status lines, then the one-line error
    assert main(["train", "--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "50",
                 "--out", str(tmp_path / "r2"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "fewer than --shots 50" in err and "\n" not in err
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_params_counts_for_vit_b16(capsys):
    expected = {(): 46080, ("bias=ffn", "image_layernorm=false"): 30720, ("bias=ffn_out", "image_layernorm=false"): 6144,
                ("bias=text", "image_layernorm=false"): 68096, ("bias=text_image", "image_layernorm=false"): 171008}
    for sets, n in expected.items():
        assert main(["params", "clipfit", *[a for s in sets for a in ("--set", s)]]) == 0
        assert capsys.readouterr().out.strip() == str(n)


def test_device_choice():
    assert pick_device("cpu").type == "cpu"


def test_base2new_grid_prints_table_and_resumes(tiny_clip, tiny_folder, tmp_path, capsys):
    args = ["base2new", "--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "4",
            "--methods", "zeroshot,clipfit", "--seeds", "1,2", "--out", str(tmp_path / "grid"), "--quiet", "--json",
            *set_args(FAST)]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    r = summary["results"]
    assert set(r) == {"zeroshot", "clipfit"} and set(r["clipfit"]) == {"base", "new", "hm"}
    b, n = r["clipfit"]["base"]["values"][0], r["clipfit"]["new"]["values"][0]
    assert r["clipfit"]["hm"]["values"][0] == pytest.approx(2 * b * n / (b + n) if b + n else 0.0)
    assert len(r["clipfit"]["base"]["values"]) == 2
    # base is the first ceil(3/2) = 2 classes, new the last one
    run_dir = next((tmp_path / "grid").glob("imagefolder-*/4shot/clipfit/seed1"))  # OUT/<dataset>/<K>shot/<method>/seed<S>
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["classnames"] == ["blue", "green"] and cfg["method_config"]["beta"] == 8.0
    stamp = (run_dir / "tuned.safetensors").stat().st_mtime_ns
    assert main([a for a in args if a != "--json"]) == 0  # a finished grid is reused, not retrained; table printed as text
    out = capsys.readouterr().out
    assert "base2new" in out and "± " in out and "clipfit" in out
    assert (run_dir / "tuned.safetensors").stat().st_mtime_ns == stamp


def test_base2new_reports_new_as_na_for_class_specific_methods(tiny_clip, tiny_folder, tmp_path, capsys):
    args = ["base2new", "--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "4",
            "--methods", "linear_probe", "--seeds", "1", "--out", str(tmp_path / "g"), "--quiet",
            *set_args(FAST)]
    assert main(args + ["--json"]) == 0
    r = json.loads(capsys.readouterr().out)["results"]["linear_probe"]
    assert r["new"]["mean"] is None and r["hm"]["mean"] is None and r["base"]["mean"] is not None
    assert main(args) == 0
    assert "n/a" in capsys.readouterr().out


def test_grid_two_stage_method_starts_from_first_stage(tiny_clip, tiny_folder, tmp_path, capsys):
    args = ["fewshot", "--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "4",
            "--methods", "prompt@layernorm", "--seeds", "1", "--out", str(tmp_path / "g"), "--quiet", "--json",
            *set_args(FAST)]
    assert main(args) == 0
    r = json.loads(capsys.readouterr().out)["results"]
    assert set(r) == {"prompt@layernorm"}
    shots_dir = next((tmp_path / "g").glob("imagefolder-*/4shot"))
    cfg = json.loads((shots_dir / "prompt@layernorm" / "seed1" / "config.json").read_text())
    assert cfg["method"] == "prompt" and cfg["method_config"]["init_from"] == str(shots_dir / "layernorm" / "seed1")
    assert (shots_dir / "layernorm" / "seed1" / "tuned.safetensors").exists()


def test_interrupted_run_resumes_from_last_epoch(tiny_clip, tiny_folder, tmp_path, monkeypatch, capsys):
    from clipfit.engine.rundir import RunDir

    real = interrupt_after_two_checkpoints(monkeypatch)
    out = tmp_path / "run"
    sets = set_args({**FAST, "epochs": 4})
    args = ["train", "--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "4", "--quiet"]
    assert main([*args, *sets, "--out", str(out)]) == 130  # interrupted after epoch 2
    partial = tmp_path / ".run.partial"  # an unfinished run lives beside its run directory
    assert (partial / "checkpoint.safetensors").exists() and not out.exists()
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(RunDir, "save_checkpoint", real)
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4]
    assert "resumed after epoch 2" in (out / "log.txt").read_text()
    assert not (out / "checkpoint.safetensors").exists() and (out / "tuned.safetensors").exists()
    assert not partial.exists()
    assert main(["train", "--out", str(out), "--resume"]) == 2  # a finished run has nothing to resume
    assert "nothing to resume" in capsys.readouterr().err

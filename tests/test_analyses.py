"""Analyses: recorded parameter change and gradients, chosen-layer tuning, `clipfit analyze`, TensorBoard."""
from __future__ import annotations

import json

import pytest
import torch

from clipfit.backbone import Backbone
from clipfit.engine.run import RunSpec, train_run
from clipfit.engine.rundir import RunDir

ONE_STEP = {"iterations": 1, "batch_size": 4, "warmup_epochs": 0, "momentum": 0.0, "weight_decay": 0.0, "lr": 0.5,
            "select": "last"}


def test_record_gives_the_hand_computed_change_of_one_step(tiny_clip, tiny_folder, tmp_path):
    spec = RunSpec(dataset=f"imagefolder:{tiny_folder}", model=tiny_clip, shots=4, method="clipfit",
                   settings={**ONE_STEP, "record": "change,grads,steps"})
    train_run(spec, tmp_path / "run", progress=False, test=False)
    run = RunDir(tmp_path / "run")
    rec = json.loads(run.read_file("record.json"))  # checked against the manifest
    tuned = run.read_tuned()
    p0 = dict(Backbone.from_pretrained(tiny_clip).model.named_parameters())
    assert set(rec["params"]) == set(tuned)
    change = dict(zip(rec["params"], rec["epochs"][-1]["change"]))
    grads = dict(zip(rec["params"], rec["epochs"][-1]["grad_sq"]))
    moved = 0
    for n, t in tuned.items():
        by_hand = float(((t.detach().float() - p0[n.removeprefix("backbone.model.")].detach().float()) ** 2).sum())
        assert change[n] == pytest.approx(by_hand, rel=1e-4, abs=1e-12)
        assert change[n] == pytest.approx(0.5 ** 2 * grads[n], rel=1e-3, abs=1e-12)  # one plain SGD step: lr^2 |g|^2
        moved += by_hand > 0
    assert moved > len(tuned) // 2
    assert [s["step"] for s in rec["steps"]] == [0, 1] and not any(rec["steps"][0]["change"])
    assert rec["steps"][1]["change"] == rec["epochs"][-1]["change"]
    assert set(rec["series"]) == {"text mlp.fc2 bias", "image LayerNorm weight", "image LayerNorm bias"}
    assert run.file("record.csv").read_text().startswith("what,epoch,step,series,layer,param,value")


def test_nothing_recorded_by_default(tiny_clip, tiny_folder, tmp_path):
    spec = RunSpec(dataset=f"imagefolder:{tiny_folder}", model=tiny_clip, shots=4, method="clipfit", settings=ONE_STEP)
    train_run(spec, tmp_path / "run", progress=False, test=False)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert names == {"config.json", "items.json", "tuned.safetensors", "metrics.json", "log.txt", "manifest.json"}


def _trainable(tiny_clip, method, **settings):
    from clipfit.engine.run import make_method  # the engine reads the run `layers_from` names
    from clipfit.method import METHODS

    cfg = METHODS.get(method).config()
    for k, v in settings.items():
        setattr(cfg, k, v)
    b = Backbone.from_pretrained(tiny_clip)
    return b, make_method(method, b, ["red", "green"], "a photo of the {}", cfg).trainable()


def test_chosen_layers_tune_exactly_the_named_parameters(tiny_clip, tmp_path):
    from clipfit.errors import ClipfitError

    b, every = _trainable(tiny_clip, "clipfit")
    vision, text = b.model.vision_model, b.model.text_model
    lns = [n for n, m in vision.named_modules() if isinstance(m, torch.nn.LayerNorm)]
    blocks = len(text.encoder.layers)
    _, first_last = _trainable(tiny_clip, "clipfit", ln_layers="1,last", bias_layers="all")
    ln_names = {f"backbone.model.vision_model.{m}.{w}" for m in (lns[0], lns[-1]) for w in ("weight", "bias")}
    assert {n for n in first_last if "vision" in n} == ln_names
    assert len([n for n in first_last if "text" in n]) == blocks  # biases untouched by ln_layers
    _, last3 = _trainable(tiny_clip, "clipfit", image_layernorm=False, bias_layers="last3")
    want = {f"backbone.model.text_model.encoder.layers.{i}.mlp.fc2.bias" for i in range(max(0, blocks - 3), blocks)}
    assert set(last3) == want
    _, two = _trainable(tiny_clip, "clipfit", image_layernorm=False, bias_layers="1-2")
    assert len(two) == 2 and len(every) == blocks + 2 * len(lns)
    # topK: the most changed layers of a recorded run
    run = RunDir(tmp_path / "rec")
    run.path.mkdir()
    names = [f"backbone.model.vision_model.{m}.weight" for m in lns]
    run.write_file("record.json", json.dumps({"params": names, "epochs": [
        {"epoch": 1, "change": [float(i == 2) + 0.5 * (i == 0) for i in range(len(names))]}]}).encode())
    _, top = _trainable(tiny_clip, "clipfit", image_layernorm=True, bias="none", ln_layers="top2",
                        layers_from=str(run.path))
    assert {n.rsplit(".", 1)[0] for n in top} == {f"backbone.model.vision_model.{lns[i]}" for i in (0, 2)}
    with pytest.raises(ClipfitError, match="layers_from"):
        _trainable(tiny_clip, "clipfit", ln_layers="top2")
    with pytest.raises(ClipfitError, match="layers are 1 to"):
        _trainable(tiny_clip, "clipfit", ln_layers="99")
    # the LayerNorm paper's last K blocks
    _, last1 = _trainable(tiny_clip, "layernorm", last_blocks=1)
    for tower in ("text_model", "vision_model"):
        k = len(getattr(b.model, tower).encoder.layers) - 1
        assert {n for n in last1 if tower in n} == {f"backbone.model.{tower}.encoder.layers.{k}.layer_norm{j}.{w}"
                                                   for j in (1, 2) for w in ("weight", "bias")}


def test_analyze_writes_png_and_csv_of_runs_and_grids(tiny_clip, tiny_folder, tmp_path):
    pytest.importorskip("matplotlib")
    from clipfit.analyses import analyze

    spec = RunSpec(dataset=f"imagefolder:{tiny_folder}", model=tiny_clip, shots=4, method="clipfit",
                   settings={**ONE_STEP, "iterations": 3, "record": "change,grads,steps"})
    train_run(spec, tmp_path / "run", progress=False, test=False)
    grid = tmp_path / "grid"
    grid.mkdir()
    rows = [{"dataset": "d", "shots": k, "method": m, "metrics": {"accuracy": {"mean": 50.0 + k + i}}}
            for k in (1, 2) for i, m in enumerate(("zeroshot", "clipfit"))]
    (grid / "results.json").write_text(json.dumps({"protocol": "fewshot", "datasets": ["d"],
                                                   "primary_metric": {"d": "accuracy"}, "rows": rows}))
    files = {f.name for f in analyze([tmp_path / "run", grid], tmp_path / "out")}
    assert {"curves.png", "curves.csv", "change.png", "grads.png", "layers.csv", "steps.png", "steps.csv",
            "grid_shots.png", "grid_shots.csv"} <= files
    for f in files:
        assert (tmp_path / "out" / f).stat().st_size > 0
    layers = (tmp_path / "out" / "layers.csv").read_text().splitlines()
    assert layers[0] == "run,series,layer,param,change,grad_sq_sum" and len(layers) > 3


def test_text_drift_is_one_minus_cosine_to_zero_shot_split_in_common_and_specific(tiny_clip, tiny_folder, tmp_path):
    import csv

    from clipfit.analyses import analyze
    from clipfit.engine.run import load_run

    ds = f"imagefolder:{tiny_folder}"
    settings = {**ONE_STEP, "iterations": 3, "reg": "none"}
    train_run(RunSpec(dataset=ds, model=tiny_clip, shots=4, method="clipfit", settings=settings),
              tmp_path / "text" / "seed1", progress=False, test=False)
    train_run(RunSpec(dataset=ds, model=tiny_clip, shots=4, method="clipfit", settings={**settings, "bias": "none"}),
              tmp_path / "image" / "seed1", progress=False, test=False)  # image LayerNorms only: text untouched
    analyze([tmp_path / "text" / "seed1", tmp_path / "image" / "seed1"], tmp_path / "out", drift=True)
    with open(tmp_path / "out" / "text_drift.csv", newline="") as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"text/seed1", "image/seed1"}  # same folder names: told apart by their parents
    assert float(rows["image/seed1"]["mean_1_minus_cos"]) == 0.0
    run = load_run(tmp_path / "text" / "seed1")
    zs = Backbone.from_pretrained(tiny_clip)
    prompts = [run.config["templates"][0].format(c) for c in run.config["classnames"]]
    with torch.no_grad():
        a = torch.nn.functional.normalize(zs.encode_text(zs.tokenize(prompts)).float(), dim=-1)
        b = run.method.text_features().float()
    by_hand = 1.0 - (a * b).sum(-1)
    assert by_hand.mean().item() > 1e-6  # the text biases moved
    assert float(rows["text/seed1"]["mean_1_minus_cos"]) == pytest.approx(by_hand.mean().item(), rel=1e-3, abs=1e-6)
    assert float(rows["text/seed1"]["max_1_minus_cos"]) == pytest.approx(by_hand.max().item(), rel=1e-3, abs=1e-6)
    # the change split into the part every class shares and the part that can reorder them
    delta = b - a
    common = delta.mean(0)
    share = len(delta) * common.pow(2).sum() / delta.pow(2).sum()
    specific = ((delta - common).pow(2).sum() / (a - a.mean(0)).pow(2).sum()).sqrt()
    assert float(rows["text/seed1"]["common_share"]) == pytest.approx(share.item(), abs=2e-4)
    assert float(rows["text/seed1"]["specific_rel"]) == pytest.approx(specific.item(), abs=2e-4)
    assert 0 < share.item() < 1 and specific.item() > 0
    assert float(rows["image/seed1"]["common_share"]) == float(rows["image/seed1"]["specific_rel"]) == 0.0


def test_tensorboard_event_files(tiny_clip, tiny_folder, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = RunSpec(dataset=f"imagefolder:{tiny_folder}", model=tiny_clip, shots=4, method="clipfit",
                   settings={**ONE_STEP, "iterations": 6, "record": "change", "log": "tensorboard"})
    train_run(spec, tmp_path / "run", progress=False, test=False)
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    RunDir(tmp_path / "run").read_file(f"tensorboard/{events[0].name}")  # in the manifest, checksum right
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/val_accuracy", "change/image LayerNorm weight/layer1"} <= set(tags)
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]


FAST = ["--set", "epochs=1", "--set", "batch_size=16", "--quiet"]


def test_paper_figures_of_recorded_runs_sweeps_and_timing(tiny_clip, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from dataclasses import replace

    from clipfit.cli import main
    from clipfit.papers.entries import ENTRIES, Call

    out = tmp_path / "p"
    assert main(["paper", "run", "clipfit:figure8", "--model", tiny_clip, "--stand-ins", "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    assert "CLIPFit w/o regulariser" in text and "image LayerNorm weight" in text and "text mlp" not in text
    assert (out / "figures" / "clipfit_figure8.png").read_bytes()[:4] == b"\x89PNG"
    runs = sorted(p.parent.parent.name for p in (out / "analyses").rglob("record.json"))
    assert runs == ["clipfit", "clipfit_w_o_regulariser"]
    # Figure 3 reuses the same DTD run: nothing trains again
    before = (out / "analyses" / "synth_shift" / "16shots" / "clipfit" / "seed1" / "tuned.safetensors").stat().st_mtime
    assert main(["paper", "run", "clipfit:figure3", "--model", tiny_clip, "--stand-ins", "--out", str(out), *FAST]) == 0
    assert (out / "analyses" / "synth_shift" / "16shots" / "clipfit" / "seed1" / "tuned.safetensors").stat().st_mtime \
        == before
    csv_rows = (out / "tables" / "clipfit_figure3.csv").read_text().splitlines()
    assert csv_rows[0].startswith("run,series,layer,param,change") and len(csv_rows) > 4
    # a sweep: one protocol call per value, the runs apart
    monkeypatch.setitem(ENTRIES, "clipfit:figure6", replace(ENTRIES["clipfit:figure6"], sweep=("beta", (0.0, 8.0)),
                                                            call=Call("base2new", {"datasets": ("imagenet",),
                                                                                   "shots": 2})))
    assert main(["paper", "run", "clipfit:figure6", "--model", tiny_clip, "--stand-ins", "--out", str(out),
                 "--seeds", "1", *FAST]) == 0
    text = capsys.readouterr().out
    for beta in ("beta0", "beta8"):
        cfg = json.loads(next((out / "sweeps" / beta).rglob("config.json")).read_text())
        assert cfg["method_config"]["beta"] == float(beta[4:])
    assert "0.0" in text and "8.0" in text and (out / "figures" / "clipfit_figure6.png").exists()
    # step time against batch size, methods side by side
    monkeypatch.setitem(ENTRIES, "llu:figure3", replace(ENTRIES["llu:figure3"], call=Call(
        "timing", {"dataset": "imagenet", "batch_sizes": (1, 4)})))
    assert main(["paper", "run", "llu:figure3", "--model", tiny_clip, "--stand-ins", "--out", str(out),
                 "--methods", "llu,clip_adapter", "--quiet", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(r[0], r[1]) for r in data["rows"]] == [("llu", "1"), ("llu", "4"), ("clip_adapter", "1"), ("clip_adapter", "4")]


def test_tower_swaps_score_each_encoder_tuned_alone(tiny_clip, tiny_folder, tmp_path):
    import csv

    from clipfit.analyses import analyze
    from clipfit.data.catalogue import load_task
    from clipfit.engine.loop import eval_loader
    from clipfit.engine.run import eval_run, load_run
    from clipfit.errors import ClipfitError

    ds = f"imagefolder:{tiny_folder}"
    settings = {**ONE_STEP, "iterations": 30, "reg": "none", "crop_scale": 1.0}
    runs = {"both": {}, "text": {"image_layernorm": False}, "image": {"bias": "none"}}
    for name, extra in runs.items():
        train_run(RunSpec(dataset=ds, model=tiny_clip, shots=4, method="clipfit", subsample="base",
                          settings={**settings, **extra}), tmp_path / name, progress=False, test=False)
    analyze([tmp_path / n for n in runs], tmp_path / "out", towers=True)
    with open(tmp_path / "out" / "towers.csv", newline="") as f:
        rows = {(r["run"], r["classes"]): r for r in csv.DictReader(f)}
    assert set(rows) == {(n, half) for n in runs for half in ("base", "new")}  # the other half scored too
    acc = {k: {c: float(r[c]) for c in ("both", "image", "text", "zero_shot")} for k, r in rows.items()}
    # a run that tuned one tower: swapping that tower back gives zero-shot, swapping the other changes nothing
    assert acc["text", "base"]["image"] == acc["text", "base"]["zero_shot"] != acc["text", "base"]["both"]
    assert acc["text", "base"]["text"] == acc["text", "base"]["both"]
    assert acc["image", "base"]["text"] == acc["image", "base"]["zero_shot"] != acc["image", "base"]["both"]
    assert acc["image", "base"]["image"] == acc["image", "base"]["both"]
    assert acc["both", "base"]["both"] == pytest.approx(eval_run(tmp_path / "both", progress=False)["accuracy"], abs=0.01)
    # every pairing by hand for the run that tuned both towers
    run, zs = load_run(tmp_path / "both"), Backbone.from_pretrained(tiny_clip)
    task = load_task(ds).with_splits()
    base = [it for it in task.test if it.classname in run.config["classnames"]]
    prompts = [run.config["templates"][0].format(c) for c in run.config["classnames"]]
    with torch.no_grad():
        text = {"tuned": run.method.text_features().float(), "zero_shot": zs.encode_text(zs.tokenize(prompts)).float()}
        xs, ys = zip(*eval_loader(base, task, run.method, 256))
        x, y = torch.cat(xs), torch.cat(ys)
        image = {"tuned": run.method.image_features(x).float(), "zero_shot": zs.encode_image(x).float()}
    by_hand = {col: 100.0 * float((image[i] @ text[t].t()).argmax(1).eq(y).float().mean())
               for col, (i, t) in {"both": ("tuned", "tuned"), "image": ("tuned", "zero_shot"),
                                   "text": ("zero_shot", "tuned"), "zero_shot": ("zero_shot", "zero_shot")}.items()}
    assert acc["both", "base"] == pytest.approx(by_hand, abs=0.01)
    train_run(RunSpec(dataset=ds, model=tiny_clip, shots=4, method="cocoop", settings=ONE_STEP),
              tmp_path / "cocoop", progress=False, test=False)
    with pytest.raises(ClipfitError, match="not image features x text features"):
        analyze([tmp_path / "cocoop"], tmp_path / "out2", towers=True)

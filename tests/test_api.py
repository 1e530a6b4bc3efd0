"""The Python API end to end on a tiny random CLIP, and the README's "From Python" example as written."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

import clipfit
from clipfit.cli import main
from clipfit.errors import ClipfitError

README = Path(__file__).resolve().parents[1] / "README.md"
FAST = {"epochs": 2, "batch_size": 4, "lr": 0.05, "warmup_epochs": 0}


def test_train_load_predict_evaluate_export(tiny_clip, tiny_folder, tmp_path):
    ds = f"imagefolder:{tiny_folder}"
    run = clipfit.train(tiny_clip, dataset=ds, out=tmp_path / "run", shots=4, progress=False, **FAST)
    assert run.dir == tmp_path / "run" and run.config["method"] == "clipfit"
    assert run.config["train_config"]["epochs"] == 2 and run.config["settings"] == FAST
    acc = run.metrics["test"]["all"]["accuracy"]

    again = clipfit.load(tmp_path / "run")
    assert again.evaluate()["accuracy"] == pytest.approx(acc)
    # paths and PIL images give the same prediction
    path = f"{tiny_folder}/red/00.png"
    by_path = again.predict([path], topk=3)[0]["top"]
    by_image = again.predict([Image.open(path)], topk=3)[0]["top"]
    assert by_path == by_image and len(by_path) == 3
    # other class names for one call; the next call is back to the run's own classes
    other = again.predict([path], classes=["red", "blue"], topk=2)[0]["top"]
    assert {t["class"] for t in other} == {"red", "blue"}
    assert {t["class"] for t in again.predict([path], topk=3)[0]["top"]} == {"red", "green", "blue"}
    # another dataset (here the base half of the same folder) is scored with its own classes
    assert again.evaluate(ds, subsample="new")["n"] > 0
    assert again.evaluate()["accuracy"] == pytest.approx(acc)

    merged = again.export(tmp_path / "merged")
    assert (merged / "config.json").exists() and (merged / "model.safetensors").exists()
    with pytest.raises(ClipfitError, match="topk"):
        again.predict([path], topk=0)


def test_settings_are_typed_values(tiny_clip, tiny_folder, tmp_path):
    ds = f"imagefolder:{tiny_folder}"
    with pytest.raises(ClipfitError, match="beta='2': expected float"):
        clipfit.train(tiny_clip, dataset=ds, out=tmp_path / "a", shots=2, beta="2", progress=False)
    with pytest.raises(ClipfitError, match="unknown setting"):
        clipfit.train(tiny_clip, dataset=ds, out=tmp_path / "b", shots=2, no_such_setting=1, progress=False)
    with pytest.raises(ClipfitError, match="choose one of"):
        clipfit.train(tiny_clip, dataset=ds, out=tmp_path / "c", shots=2, optimizer="adam", progress=False)
    assert not (tmp_path / "a").exists()  # refused before anything is written
    # an int is a fine float; the command line parses strings into the same typed values
    r = clipfit.train(tiny_clip, dataset=ds, out=tmp_path / "d", shots=2, beta=2, progress=False, **FAST)
    assert r.config["method_config"]["beta"] == 2.0


def test_grids_return_tables_and_rows(tiny_clip, tiny_folder, tmp_path, capsys):
    ds = f"imagefolder:{tiny_folder}"
    res = clipfit.base2new(tiny_clip, dataset=ds, out=tmp_path / "g", methods=["zeroshot", "clipfit"], seeds=[1, 2],
                           shots=4, progress=False, **FAST)
    rows = res.rows()
    assert [r["method"] for r in rows] == ["zeroshot", "clipfit"]
    assert set(rows[1]) >= {"base", "new", "hm", "base_std", "hm_values"} and len(rows[1]["hm_values"]) == 2
    assert json.loads((tmp_path / "g" / "results.json").read_text()) == res.summary
    # the command line prints exactly the API's table
    args = ["base2new", "--model", tiny_clip, "--dataset", ds, "--shots", "4", "--methods", "zeroshot,clipfit",
            "--seeds", "1,2", "--out", str(tmp_path / "g"), "--quiet"]
    assert main(args + [a for k, v in FAST.items() for a in ("--set", f"{k}={v}")]) == 0
    assert capsys.readouterr().out.strip() == res.table()
    fs = clipfit.fewshot(tiny_clip, dataset=ds, out=tmp_path / "f", methods=["zeroshot"], seeds=[1], shots=2,
                         progress=False)
    assert fs.rows()[0]["accuracy"] is not None and "fewshot" in fs.table()
    # a setting no method of the grid has is refused (not silently ignored)
    with pytest.raises(ClipfitError, match="none of the methods"):
        clipfit.fewshot(tiny_clip, dataset=ds, out=tmp_path / "h", methods=["zeroshot"], seeds=[1], beta=2.0)


def test_methods_and_datasets_listings():
    methods = {m["name"]: m for m in clipfit.methods()}
    assert methods["prompt+ln"]["base"] == "prompt" and methods["prompt+ln"]["preset"] == {"layernorm": True}
    assert methods["llu:dirac"]["preset"] == {"mask": "dirac", "clusters": 0}
    assert methods["clipfit"]["preset"] == {} and methods["clipfit"]["recipe"] == "clipfit"
    datasets = {d["name"]: d for d in clipfit.datasets()}
    assert datasets["food101"]["aliases"] == ["food"] and datasets["imagenet_a"]["test_only"]
    assert clipfit.params("clipfit")["trainable"] == 46080


def _python_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    code = _python_example()
    assert 6 <= len([ln for ln in code.splitlines() if ln.strip()]) <= 12
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "base2new on synth_shift" in out and (tmp_path / "runs" / "py-merged" / "config.json").exists()


def test_readme_datasets_exist_in_the_catalogue(capsys):
    listed = README.read_text(encoding="utf-8").split("- `--dataset`:", 1)[1].split("\n- `", 1)[0]
    names = set(re.findall(r"`([a-z][a-z0-9_]*)`", listed))
    assert main(["datasets"]) == 0
    printed = capsys.readouterr().out
    catalogue = {line.split()[0] for line in printed.splitlines() if line.strip()}
    aliases = {a.strip() for m in re.findall(r"\(also: ([^)]*)\)", printed) for a in m.split(",")}
    assert len(names) >= 20 and not names - catalogue - aliases, sorted(names - catalogue - aliases)

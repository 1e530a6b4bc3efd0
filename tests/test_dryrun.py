"""Dry runs: the whole grid of a table planned from an empty disk, every missing dataset named at once with what to
fetch, each run's resolved settings, and a time estimate from the measured step alone; no model is downloaded."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipfit.backbone import Backbone
from clipfit.cli import main

COOP11 = ["imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft",
          "sun397", "dtd", "eurosat", "ucf101"]


@pytest.fixture
def no_model_loads(monkeypatch):
    """The paper's backbone is not on this machine (whatever the local Hugging Face cache holds), and a dry run that
    would load (or download) a model fails the test."""
    from clipfit import hub

    def refuse(*a, **k):
        raise AssertionError("a dry run loaded a model")

    monkeypatch.setattr(hub, "_cached", lambda repo_id: False)
    monkeypatch.setattr(Backbone, "from_pretrained", refuse)


def dry(capsys, *args: str) -> tuple[dict, str]:
    assert main([*args, "--dry-run", "--json", "--quiet"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert main([*args, "--dry-run", "--quiet"]) == 0
    return data, capsys.readouterr().out


def test_table1_from_an_empty_disk_names_every_dataset_and_plans_the_whole_grid(tmp_path: Path, capsys, no_model_loads):
    empty = tmp_path / "data"
    empty.mkdir()
    data, text = dry(capsys, "paper", "run", "clipfit:table1", "--root", str(empty), "--out", str(tmp_path / "out"))
    assert list(data["missing"]) == COOP11 and data["skipped"] == []
    for d in COOP11:  # each named once, at once, with what to fetch
        assert f"  {d} " in text
    assert f"put in {empty / 'food-101'}/: images/, split_zhou_Food101.json" in text
    assert "get split_zhou_DescribableTextures.json: https://drive.google.com/" in text
    # the full grid: 11 datasets x (6 trained methods x 3 seeds + zero-shot once)
    runs = data["runs"]
    assert len(runs) == 11 * (6 * 3 + 1) and {r["status"] for r in runs} == {"data missing"}
    assert {r["dataset"] for r in runs} == set(COOP11) and {r["shots"] for r in runs if r["method"] == "coop"} == {16}
    st = {(r["dataset"], r["method"]): r["settings"] for r in runs}
    # CLIPFit's recipe as the paper states it: 10 epochs for ImageNet and Food101, 100 otherwise, beta 8 (base-to-new)
    assert {d: st[d, "clipfit"]["epochs"] for d in ("imagenet", "food101", "dtd")} == {"imagenet": 10, "food101": 10,
                                                                                       "dtd": 100}
    assert all(st[d, "clipfit"]["weights"] == {"β": 8.0} for d in COOP11)
    assert st["dtd", "clipfit"] | {} == {"epochs": 100, "iterations": 0, "lr": 0.002, "batch": 32, "weights": {"β": 8.0},
                                        "templates": "{} texture.", "val_per_class": 4, "tested": "last epoch"}
    assert st["imagenet", "clipfit"]["val_per_class"] is None  # ImageNet has no validation split
    assert st["eurosat", "kgcoop"]["weights"] == {"λ": 8.0} and st["eurosat", "kgcoop"]["batch"] == 128
    assert st["eurosat", "zeroshot"]["tested"] == "nothing trained"
    assert "dtd             16     clipfit       1,2,3  data missing  100     0.002   32     β 8    {} texture." in text
    # the paper's backbone, said why, and no estimate without it: plainly, and nothing downloaded
    assert data["model"] == "openai/clip-vit-base-patch16" and "the paper's backbone" in text
    assert data["estimated_seconds"] is None and "209 runs: 209 data missing" in text
    assert "time: not estimated: the model openai/clip-vit-base-patch16 is not in the local Hugging Face cache" in text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("config.json"))


def test_a_real_run_names_every_missing_dataset_at_once(tmp_path: Path, capsys):
    assert main(["base2new", "--datasets", "dtd,eurosat,synth", "--root", str(tmp_path), "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("clipfit: error: 2 datasets cannot be read: dtd, eurosat (the first: ")
    assert f"`clipfit datasets check --root {tmp_path} dtd eurosat`" in err and "--skip-missing" in err
    assert main(["paper", "run", "clipfit:table9", "--root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()  # a missing source cannot be skipped: no --skip-missing hint
    assert "11 datasets cannot be read: imagenet, caltech101" in err and "--skip-missing" not in err
    assert err.endswith("or pass --stand-ins to run clipfit:table9 on synthetic stand-ins")
    assert main(["fewshot", "--dataset", "dtd", "--out", str(tmp_path / "o")]) == 2  # no --root at all
    assert capsys.readouterr().err.strip() == ("clipfit: error: dtd is read from disk: pass --root DIR (`clipfit "
                                               "datasets check --root DIR dtd` says what goes in it)")


def test_skip_missing_names_what_it_skips(tiny_clip, tmp_path: Path, capsys):
    data, text = dry(capsys, "fewshot", "--datasets", "synth,dtd", "--root", str(tmp_path), "--model", tiny_clip,
                     "--methods", "zeroshot", "--seeds", "1", "--skip-missing", "--out", str(tmp_path / "out"))
    assert data["skipped"] == ["dtd"] and {r["dataset"] for r in data["runs"]} == {"synth"}
    assert "skipped (--skip-missing), no run planned: dtd" in text and f"{tmp_path / 'dtd'}/ not found" in text
    assert f"model: {tiny_clip}" in text.splitlines()[1]


@pytest.mark.parametrize("args", [
    ["crossdataset", "--source", "synth", "--targets", "synth_shift,dtd"],
    ["domainshift", "--source", "synth", "--targets", "synth_cast"],
    ["regimes", "--datasets", "synth,food101_ln", "--low-shots", "1", "--high-shots", "32"],
    ["episodic", "--dataset", "synth_episodic", "--episodes", "5"],
])
def test_every_grid_command_has_a_dry_run(args, tiny_clip, tmp_path: Path, capsys):
    out = tmp_path / "out"
    data, text = dry(capsys, *args, "--root", str(tmp_path), "--model", tiny_clip, "--methods", "zeroshot",
                     "--seeds", "1", "--out", str(out))
    assert data["dry_run"] and data["protocol"] == args[0] and data["runs"] and data["estimated_seconds"] > 0
    assert not out.exists() or not any(out.rglob("config.json"))
    if args[0] in ("regimes", "crossdataset"):  # a dataset that is not there is planned all the same
        missing = "food101_ln" if args[0] == "regimes" else "dtd"
        assert list(data["missing"]) == [missing] and "data missing" in text or args[0] == "crossdataset"


def test_the_estimate_counts_steps_not_setup(tiny_clip, tmp_path: Path, capsys, monkeypatch):
    """LLU trains on cached features and clusters them first (setup): made to take 2 s here, the setup must not show
    in its measured step (it did: the step was one timing of a few steps, setup included, over the steps)."""
    import time

    from clipfit.method.llu import LLU

    clustering = LLU.on_features

    def slow(self, *a, **k):
        time.sleep(2.0)
        return clustering(self, *a, **k)

    monkeypatch.setattr(LLU, "on_features", slow)
    assert main(["base2new", "--dataset", "synth", "--model", tiny_clip, "--methods", "llu", "--seeds", "1", "--out",
                 str(tmp_path / "out"), "--dry-run", "--json", "--quiet"]) == 0
    (llu,) = json.loads(capsys.readouterr().out)["measured"]
    assert 0 < llu["step"] < 0.1, llu  # with the setup: above 2 s / 9 steps


def test_a_step_is_timed_without_the_setup_even_in_noise(monkeypatch):
    """`per_unit` on a clock that moves only when told: setup 2 s, a step 3 ms; then with 40 ms of noise between two
    timings of the same run, which the difference of 8 steps (24 ms) cannot beat: timed again with more steps."""
    from clipfit.protocols import dryrun

    now, calls = [0.0], []
    monkeypatch.setattr(dryrun.time, "perf_counter", lambda: now[0])

    def fit(n: int, noise: float = 0.0) -> None:
        calls.append(n)
        now[0] += 2.0 + 0.003 * n + noise * (len(calls) // 2 % 2 == 0)  # the second timing of each n is slower

    assert dryrun.per_unit(fit, 8) == (pytest.approx(2.003), pytest.approx(0.003))
    calls.clear()
    fixed, step = dryrun.per_unit(lambda n: fit(n, 0.04), 8)
    assert step == pytest.approx(0.003) and max(calls) > 9  # more than 8 steps were needed


def test_the_layernorm_regimes_plan_the_papers_splits_and_validation(tmp_path: Path, capsys, no_model_loads):
    data, _ = dry(capsys, "paper", "run", "layernorm:figure7", "--root", str(tmp_path), "--out", str(tmp_path / "o"),
                  "--seeds", "1")
    layernorm = [r for r in data["runs"] if r["method"] == "layernorm"]
    assert {r["shots"] for r in layernorm} == {1, 4, 16}
    val = {(r["dataset"], r["shots"]): r["settings"]["val_per_class"] for r in layernorm}
    assert val["dtd_ln", 16] == 16 and val["oxford_flowers_ln", 16] == 4 and val["mnist", 1] == 1  # K (Flowers: <= 4)
    assert {r["settings"]["weights"]["last_blocks"] for r in layernorm} == {2, 4, 6, 8, 10, 12}
    data, _ = dry(capsys, "paper", "run", "layernorm:table1", "--root", str(tmp_path), "--out", str(tmp_path / "o"),
                  "--seeds", "1", "--methods", "linear_probe")
    high = {d: sorted({r["shots"] for r in data["runs"] if r["dataset"] == d and r["shots"] > 16})
            for d in ("food101_ln", "dtd_ln", "oxford_flowers_ln", "cifar100")}
    assert high == {"food101_ln": [256, 512], "dtd_ln": [], "oxford_flowers_ln": [], "cifar100": [256, 450]}

"""Bad input and faults, tried as a new user would (issue 11): nothing lost, nothing silent, one line per mistake.

Each test names the fault it covers (numbers as in the issue's ranked list); docs/faults.md lists every bad input
with the line it gets.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import clipfit
from clipfit.cli import main
from clipfit.engine.rundir import RunDir
from clipfit.errors import ClipfitError
from conftest import interrupt_after_two_checkpoints, set_args

FAST = {"epochs": 2, "batch_size": 4, "lr": 0.05, "warmup_epochs": 0}
SRC = str(Path(clipfit.__file__).resolve().parents[1])


def _args(tiny_clip, folder, out, *extra, settings=FAST):
    return ["train", "--model", tiny_clip, "--dataset", f"imagefolder:{folder}", "--shots", "4", "--quiet",
            "--out", str(out), *set_args(settings), *extra]


def _error(capsys) -> str:
    """The command's stderr, which must be exactly one 'clipfit: error:' line."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipfit: error:") and "\n" not in err, err
    return err


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clipfit.cli", *args], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def trained(tiny_clip, tiny_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(_args(tiny_clip, tiny_folder, out)) == 0
    return out


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture
def folder_copy(tiny_folder, tmp_path) -> Path:
    shutil.copytree(tiny_folder, tmp_path / "images")
    return tmp_path / "images"


# -- 1. data loss: --overwrite never destroys a good run ------------------------------------------------------------
def test_failed_overwrite_keeps_the_old_run(tiny_clip, tiny_folder, run_copy, monkeypatch, capsys):
    before = {f: _sha(run_copy / f) for f in ("tuned.safetensors", "metrics.json", "config.json")}
    real, calls = RunDir.save_checkpoint, []

    def crash_in_epoch_two(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")  # e.g. a full disk, a CUDA error
        real(*a, **kw)

    monkeypatch.setattr(RunDir, "save_checkpoint", crash_in_epoch_two)
    with pytest.raises(RuntimeError):
        main(_args(tiny_clip, tiny_folder, run_copy, "--overwrite", settings={**FAST, "epochs": 3}))
    assert {f: _sha(run_copy / f) for f in before} == before  # the old run is whole
    assert clipfit.load(run_copy).predict([f"{tiny_folder}/red/00.png"], topk=1)
    assert RunDir(run_copy).has_checkpoint  # the failed one can be continued...
    monkeypatch.setattr(RunDir, "save_checkpoint", real)
    assert main(_args(tiny_clip, tiny_folder, run_copy)) == 2  # ...and is not silently discarded
    assert "interrupted run" in _error(capsys)
    assert main(_args(tiny_clip, tiny_folder, run_copy, "--overwrite", settings={**FAST, "epochs": 3})) == 0
    assert json.loads((run_copy / "config.json").read_text())["train_config"]["epochs"] == 3  # replaced at the end
    assert not RunDir(run_copy).partial.path.exists() and not RunDir(run_copy).lock_file.exists()


def test_bad_image_fails_before_anything_is_written(tiny_clip, folder_copy, run_copy, tmp_path, capsys):
    bad = folder_copy / "green" / "07.png"
    bad.write_bytes(b"not an image at all")
    before = _sha(run_copy / "tuned.safetensors")
    assert main(_args(tiny_clip, folder_copy, run_copy, "--overwrite")) == 2
    assert str(bad) in _error(capsys)
    assert _sha(run_copy / "tuned.safetensors") == before and not RunDir(run_copy).partial.path.exists()
    # 6. late failures: into a new directory nothing is left behind, so the retry needs no --overwrite or --resume
    fresh = tmp_path / "fresh"
    assert main(_args(tiny_clip, folder_copy, fresh)) == 2
    capsys.readouterr()
    assert not fresh.exists() and not RunDir(fresh).partial.path.exists()
    good = folder_copy / "green" / "08.png"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # a truncated PNG: its header is fine
    assert main(_args(tiny_clip, folder_copy, fresh)) == 2
    assert "07.png" in _error(capsys)
    shutil.copy(good, bad)
    assert main(_args(tiny_clip, folder_copy, fresh)) == 0


# -- 2. silent corruption: two runs into one directory ------------------------------------------------------------
def test_second_run_into_the_same_directory_is_refused(tiny_clip, tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    first = _cli(*_args(tiny_clip, tiny_folder, out, settings={**FAST, "epochs": 100000}))
    try:
        lock = RunDir(out).lock_file
        for _ in range(600):  # until the first run holds the lock (its start-up takes seconds)
            if lock.exists() and lock.read_text().strip() == str(first.pid):
                break
            assert first.poll() is None, first.communicate()
            time.sleep(0.1)
        second = _cli(*_args(tiny_clip, tiny_folder, out, "--overwrite"))
        _, err = second.communicate(timeout=300)
        assert second.returncode == 2 and err.strip().count("\n") == 0, err
        assert "in use by another clipfit run" in err and f"pid {first.pid}" in err
        assert first.poll() is None  # the first run goes on, undisturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # its holder is dead: the lock file is still there, with its pid, but no longer holds anyone back
    assert lock.read_text().strip() == str(first.pid)
    assert main(_args(tiny_clip, tiny_folder, out, "--overwrite")) == 0
    assert (out / "tuned.safetensors").exists() and not lock.exists()


# -- 3. silent wrong results --------------------------------------------------------------------------------------
def test_changed_weights_fail_their_checksum(run_copy, capsys):
    tuned = run_copy / "tuned.safetensors"
    data = bytearray(tuned.read_bytes())
    data[-3] ^= 0x40  # one flipped bit inside a weight: still a valid safetensors file
    tuned.write_bytes(bytes(data))
    assert main(["predict", str(run_copy), str(run_copy / "config.json")]) == 2
    assert "tuned.safetensors does not match its checksum: the file was changed or damaged" in _error(capsys)
    (run_copy / "config.json").write_text((run_copy / "config.json").read_text().replace('"seed": 1', '"seed": 2'))
    assert main(["eval", str(run_copy)]) == 2
    assert "config.json does not match its checksum" in _error(capsys)


def test_every_file_of_a_run_has_a_checksum(trained):
    manifest = json.loads((trained / "manifest.json").read_text())
    names = {p.name for p in trained.iterdir()} - {"manifest.json"}
    assert names == {"config.json", "items.json", "tuned.safetensors", "metrics.json", "log.txt"}
    assert manifest["files"] == {n: _sha(trained / n) for n in names} and "pending" not in manifest


def _rewrite_tuned(run: Path, change) -> None:
    """Change the tuned weights and record the new checksum (as a run that trained them would)."""
    tensors = load_file(run / "tuned.safetensors")
    change(tensors)
    save_file(tensors, run / "tuned.safetensors")
    man = json.loads((run / "manifest.json").read_text())
    man["files"]["tuned.safetensors"] = _sha(run / "tuned.safetensors")
    (run / "manifest.json").write_text(json.dumps(man))


def test_nonfinite_weights_are_refused(run_copy, capsys):
    _rewrite_tuned(run_copy, lambda t: next(iter(t.values())).fill_(float("nan")))
    assert main(["eval", str(run_copy)]) == 2
    assert "non-finite" in _error(capsys)


@pytest.mark.parametrize("bad, expect", [
    (["--set", "lr=nan"], "lr=nan: must be a finite number >= 0"),
    (["--set", "lr=inf"], "lr=inf: must be a finite number >= 0"),
    (["--set", "lr=-0.1"], "lr=-0.1: must be >= 0"),
    (["--set", "epochs=-1"], "epochs=-1: must be >= 0"),
    (["--set", "batch_size=0"], "batch_size=0: must be >= 1"),
    (["--set", "crop_scale=2"], "crop_scale=2.0: must be in (0, 1]"),
    (["--set", "momentum=1.5"], "momentum=1.5: must be in [0, 1)"),
    (["--set", "beta=-2"], "beta=-2.0: must be >= 0"),
    (["--shots", "-3"], "--shots -3: must be >= 0"),
])
def test_out_of_range_settings_are_refused_with_the_range(tiny_clip, tiny_folder, tmp_path, capsys, bad, expect):
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "r") + bad) == 2
    assert expect in _error(capsys)
    assert not (tmp_path / "r").exists()


def test_api_checks_ranges_too(tiny_folder, tmp_path):
    with pytest.raises(ClipfitError, match=r"lr=nan: must be a finite number"):
        clipfit.train(dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "r", lr=float("nan"))
    with pytest.raises(ClipfitError, match=r"crop_scale=0.0: must be in \(0, 1\]"):
        clipfit.train(dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "r", crop_scale=0.0)


@pytest.mark.parametrize("topk", ["0", "-2"])
def test_topk_below_one_is_refused(trained, tiny_folder, capsys, topk):
    assert main(["predict", str(trained), f"{tiny_folder}/red/00.png", "--topk", topk]) == 2
    assert f"topk={topk}: must be at least 1" in _error(capsys)


def test_16bit_and_float_images_are_scaled_not_clipped(tmp_path):
    from clipfit.data.images import FileReader, to_rgb

    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    rgb = np.asarray(FileReader(tmp_path)("g16.png"))
    assert rgb.shape == (48, 64, 3) and rgb.min() == 0 and rgb.max() == 255
    assert abs(rgb.mean() - 127.5) < 1  # Pillow's own convert('RGB') gives a white image (mean 254)
    flt = Image.fromarray((ramp / 65535.0).astype(np.float32))
    assert abs(np.asarray(to_rgb(flt)).mean() - 127.5) < 1


# -- 4. exact resume ----------------------------------------------------------------------------------------------
def _result(run: Path) -> tuple[str, dict]:
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("train_seconds")
    return _sha(run / "tuned.safetensors"), metrics


def test_resume_after_sigkill_is_bit_identical(tiny_clip, tiny_folder, tmp_path):
    # clipfit trains through CLIP on augmented images (crops, flips, shuffled batches): every generator matters
    settings = {"epochs": 6, "batch_size": 4, "lr": 0.05, "warmup_epochs": 1, "crop_scale": 0.3}
    ref = _cli(*_args(tiny_clip, tiny_folder, tmp_path / "ref", settings=settings))
    assert ref.wait(timeout=600) == 0, ref.communicate()
    out = tmp_path / "killed"
    kill_after = random.randint(1, 4)  # epochs finished before the kill (plus whatever happens while we look)
    proc = _cli(*_args(tiny_clip, tiny_folder, out, settings=settings))
    log = RunDir(out).partial.file("log.txt")
    while not (log.exists() and len(log.read_text().splitlines()) >= kill_after):
        assert proc.poll() is None, f"the run ended before the kill: {proc.communicate()}"
        time.sleep(0.005)
    time.sleep(random.uniform(0, 0.05))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not out.exists() and RunDir(out).has_checkpoint, f"killed after epoch {kill_after}"
    resumed = _cli("train", "--out", str(out), "--resume", "--quiet")
    assert resumed.wait(timeout=600) == 0, resumed.communicate()
    assert "resumed after epoch" in (out / "log.txt").read_text()
    assert _result(out) == _result(tmp_path / "ref"), f"killed after epoch {kill_after}"


@pytest.mark.parametrize("method, settings", [
    ("linear_probe", {"epochs": 5, "batch_size": 4, "lr": 0.05, "warmup_epochs": 0}),  # trains on cached features
    # a frozen image tower: a pool of cached augmented views, epoch e on view e mod 3 (the resumed epoch's too)
    ("coop", {"epochs": 5, "batch_size": 4, "lr": 0.05, "warmup_epochs": 0, "n_ctx": 4, "feature_views": 3}),
    ("clipfit", {"epochs": 5, "batch_size": 4, "lr": 0.05, "warmup_epochs": 0, "select": "last"}),
])
def test_resume_after_an_interruption_is_bit_identical(tiny_clip, tiny_folder, tmp_path, monkeypatch, method, settings):
    args = lambda out: _args(tiny_clip, tiny_folder, out, "--method", method, settings=settings)  # noqa: E731
    assert main(args(tmp_path / "ref")) == 0
    real = interrupt_after_two_checkpoints(monkeypatch)
    assert main(args(tmp_path / "cut")) == 130
    monkeypatch.setattr(RunDir, "save_checkpoint", real)
    torch.manual_seed(1234), random.seed(99), np.random.seed(7)  # what happened in between must not matter
    assert main(["train", "--out", str(tmp_path / "cut"), "--resume", "--quiet"]) == 0
    assert _result(tmp_path / "cut") == _result(tmp_path / "ref")


# -- 5. one line, never a traceback -------------------------------------------------------------------------------
def test_damaged_or_foreign_weight_files(run_copy, tiny_folder, capsys):
    tuned = run_copy / "tuned.safetensors"
    good = tuned.read_bytes()
    man = json.loads((run_copy / "manifest.json").read_text())
    for data in (good[:40], b"\x00" * 16, b"garbage"):
        tuned.write_bytes(data)
        man["files"]["tuned.safetensors"] = hashlib.sha256(data).hexdigest()  # damaged before the manifest was made
        (run_copy / "manifest.json").write_text(json.dumps(man))
        assert main(["eval", str(run_copy)]) == 2
        assert "tuned.safetensors is not a readable safetensors file" in _error(capsys)
    tuned.write_bytes(good)
    man["files"]["tuned.safetensors"] = _sha(tuned)
    (run_copy / "manifest.json").write_text(json.dumps(man))
    _rewrite_tuned(run_copy, lambda t: t.update({"something.else": torch.zeros(3)}))  # another model's weights
    assert main(["eval", str(run_copy)]) == 2
    assert "do not fit method 'clipfit'" in _error(capsys)
    (run_copy / "manifest.json").unlink()  # a damaged manifest, or none at all (a run of clipfit 0.1)
    (run_copy / "config.json").write_text('{"method": "clipfit"}')
    assert main(["eval", str(run_copy)]) == 2
    assert "is not a clipfit run configuration" in _error(capsys)


def test_damaged_checkpoint_is_one_line(tiny_clip, tiny_folder, tmp_path, monkeypatch, capsys):
    real = RunDir.save_checkpoint

    def interrupt(*a, **kw):
        real(*a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", interrupt)
    out = tmp_path / "run"
    assert main(_args(tiny_clip, tiny_folder, out)) == 130
    capsys.readouterr()
    ckpt = RunDir(out).partial.file("checkpoint.safetensors")
    ckpt.write_bytes(ckpt.read_bytes()[:-10])
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 2
    assert "checkpoint.safetensors does not match its checksum" in _error(capsys)


def test_unusable_out_directories(tiny_clip, tiny_folder, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "afile")) == 2
    assert "is a file, not a folder" in _error(capsys)
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "afile" / "run")) == 2
    assert "afile is a file, not a folder" in _error(capsys)
    assert main(_args(tiny_clip, tiny_folder, tmp_path / ("x" * 300))) == 2
    assert "File name too long" in _error(capsys)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not bind root")
def test_read_only_out_directory(tiny_clip, tiny_folder, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(_args(tiny_clip, tiny_folder, ro / "run")) == 2
        assert "Permission denied" in _error(capsys)
    finally:
        ro.chmod(0o700)


def test_model_folder_whose_config_does_not_fit_its_weights(tiny_clip, tiny_folder, tmp_path, capsys):
    bad = tmp_path / "model"
    shutil.copytree(tiny_clip, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["text_config"]["intermediate_size"] = 96
    (bad / "config.json").write_text(json.dumps(cfg))
    assert main(_args(str(bad), tiny_folder, tmp_path / "r")) == 2
    err = _error(capsys)
    assert "config.json does not fit its weights" in err and "mlp.fc1" in err and "(96" in err
    shutil.copytree(tiny_clip, bad, dirs_exist_ok=True)
    weights = load_file(bad / "model.safetensors")
    del weights["text_projection.weight"]
    save_file(weights, bad / "model.safetensors", metadata={"format": "pt"})
    assert main(_args(str(bad), tiny_folder, tmp_path / "r")) == 2
    assert "its weight files lack 1 of the model's weights" in _error(capsys) and not (tmp_path / "r").exists()


def test_logreg_probe_without_scikit_learn_says_what_to_install(tiny_clip, tiny_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if not installed
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "r", "--method", "logreg_probe", settings={})) == 2
    assert "pip install scikit-learn" in _error(capsys)


# -- 7. misleading messages ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", [99, -1])
def test_split_file_label_out_of_range_is_named(tmp_path, label):
    from clipfit.data.readers.coop_layout import read_split_file

    (tmp_path / "img").mkdir()
    split = {"train": [["a.png", 0, "cat"], ["b.png", 1, "dog"], ["c.png", label, "fox"]], "test": [["a.png", 0, "cat"]]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    with pytest.raises(ClipfitError, match=rf"label {label} \(class 'fox'\) is outside 0..2.*missing: 2"):
        read_split_file(tmp_path / "split.json", tmp_path / "img")


# -- 8. offline, and a fast start ---------------------------------------------------------------------------------
def test_offline_hub_model_is_one_line(tiny_folder, tmp_path, monkeypatch, capsys):
    from clipfit import hub

    args = lambda model: _args(model, tiny_folder, tmp_path / "r")  # noqa: E731
    assert main(args("ViT-B-16")) == 2  # no folder, and no hub id (owner/name)
    assert "neither a local folder nor a Hugging Face hub id" in _error(capsys)
    assert main(args("clipfit-test/not-cached")) == 2  # HF_HUB_OFFLINE=1 (conftest)
    assert "not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in _error(capsys)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for var in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: like no network
    hub.hub_reachable.cache_clear()
    try:
        assert main(args("clipfit-test/not-cached")) == 2
        assert "the hub cannot be reached" in _error(capsys)
    finally:
        hub.hub_reachable.cache_clear()


@pytest.mark.parametrize("command", [["--help"], ["datasets"], ["pretrain-mini", "--help"]])
def test_light_commands_do_not_import_torch(command):
    code = (f"import sys\nfrom clipfit.cli import main\ntry:\n    main({command!r})\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300).stdout
    expect = "TORCH" if command[0] == "pretrain-mini" else "NO TORCH"  # its arguments live with its code
    assert out.strip().splitlines()[-1] == expect


# -- 9. the export knows its classes and template -----------------------------------------------------------------
def test_export_carries_classes_and_template(trained, tiny_folder, tmp_path, capsys):
    from transformers import CLIPModel, pipeline

    merged = tmp_path / "merged"
    assert main(["export", str(trained), "--merged", str(merged)]) == 0
    capsys.readouterr()
    info = json.loads((merged / "clipfit.json").read_text())
    config = json.loads((trained / "config.json").read_text())
    assert info["classnames"] == config["classnames"] and info["hypothesis_template"] == config["templates"][0]
    assert CLIPModel.from_pretrained(merged).config.id2label == dict(enumerate(config["classnames"]))
    img = f"{tiny_folder}/green/03.png"
    clf = pipeline("zero-shot-image-classification", model=str(merged), device="cpu")
    theirs = {r["label"]: r["score"] for r in clf(img, candidate_labels=info["classnames"],
                                                   hypothesis_template=info["hypothesis_template"])}
    ours = {t["class"]: t["probability"] for t in clipfit.load(trained).predict([img], topk=3)[0]["top"]}
    assert theirs == pytest.approx(ours, abs=1e-4)


# -- 10. smaller ---------------------------------------------------------------------------------------------------
def test_run_files_get_the_usual_permissions(tiny_clip, tiny_folder, tmp_path):
    old = os.umask(0o022)
    try:
        assert main(_args(tiny_clip, tiny_folder, tmp_path / "r")) == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "r").iterdir()}
    assert set(modes.values()) == {0o644}, modes


def test_relative_imagefolder_works_from_another_directory(tiny_clip, tiny_folder, tmp_path, monkeypatch, capsys):
    shutil.copytree(tiny_folder, tmp_path / "data" / "colours")
    monkeypatch.chdir(tmp_path / "data")
    assert main(_args(tiny_clip, "colours", tmp_path / "r")) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(tmp_path / "r"), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] > 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["dataset"] == \
        f"imagefolder:{tmp_path / 'data' / 'colours'}"


def test_too_many_shots_says_how_many_images_a_class_needs(tiny_clip, tiny_folder, tmp_path, capsys):
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "r") + ["--shots", "16"]) == 2
    err = _error(capsys)  # 20 images per class keep 10 for training
    assert "fewer than --shots 16" in err and "needs 31 images per class" in err


def test_progress_on_a_pipe_is_a_line_per_epoch_and_status_lines(tiny_clip, tiny_folder, tmp_path, capsys):
    args = [a for a in _args(tiny_clip, tiny_folder, tmp_path / "r", settings={**FAST, "epochs": 3}) if a != "--quiet"]
    assert main(args) == 0  # captured stderr is no terminal
    err = capsys.readouterr().err
    assert "clipfit: checking 42 images" in err and "clipfit: loading model" in err
    epochs = [ln for ln in err.splitlines() if "epoch=" in ln]
    assert [ln.split()[4] for ln in epochs] == ["epoch=1", "epoch=2", "epoch=3"]
    assert all(ln.startswith("clipfit: clipfit seed 1: epoch=") for ln in epochs)  # which run, in a grid


def test_settings_show_their_range(capsys):
    assert main(["methods", "--details"]) == 0
    out = capsys.readouterr().out
    assert "crop_scale = 0.08" in out and "[in (0, 1]]" in out and "batch_size = 32: training batch size [>= 1]" in out


def test_interrupted_grid_run_resumes_exactly_from_its_partial_directory(tiny_clip, tiny_folder, tmp_path, monkeypatch):
    def grid(out):
        return ["fewshot", "--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "4", "--methods",
                "clipfit", "--seeds", "1", "--out", str(out), "--quiet", *set_args({**FAST, "epochs": 3})]

    assert main(grid(tmp_path / "ref")) == 0
    real = interrupt_after_two_checkpoints(monkeypatch)
    assert main(grid(tmp_path / "g")) == 130
    from clipfit.protocols.jobs import dataset_dir

    cell = Path(dataset_dir(f"imagefolder:{tiny_folder}")) / "4shot" / "clipfit" / "seed1"  # OUT/<dataset>/<K>shot/...
    run = RunDir(tmp_path / "g" / cell)
    assert run.has_checkpoint and not run.path.exists()  # the checkpoint lives in .seed1.partial
    monkeypatch.setattr(RunDir, "save_checkpoint", real)
    assert main(grid(tmp_path / "g")) == 0  # the grid continues the run by itself
    assert "resumed after epoch 2" in run.file("log.txt").read_text()
    assert _result(run.path) == _result(tmp_path / "ref" / cell)

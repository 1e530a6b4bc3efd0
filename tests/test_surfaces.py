"""Nothing lost, nothing silent, on every surface around `train` (issue 21): `--overwrite` of train and export (CLI
and API), image folders with symbolic links, grids, `--items`, templates, `--root`, the Python API's arguments,
unbounded settings, several processes, prompts that tokenize alike, and the one-liners that misled.

docs/faults.md lists each case with the line it gets.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

import clipfit
from clipfit.cli import main
from clipfit.errors import ClipfitError
from conftest import set_args

FAST = {"epochs": 2, "batch_size": 4, "lr": 0.05, "warmup_epochs": 0}


def _args(tiny_clip, folder, out, *extra, settings=FAST):
    return ["train", "--model", tiny_clip, "--dataset", f"imagefolder:{folder}", "--shots", "4", "--quiet",
            "--out", str(out), *set_args(settings), *extra]


def _error(capsys) -> str:
    """The command's stderr, which must be exactly one 'clipfit: error:' line."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipfit: error:") and "\n" not in err, err
    return err


def _tree(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` (and its hidden siblings' names) with the SHA-256 of each file."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for n in dirnames:
            out[os.path.relpath(os.path.join(dirpath, n), folder)] = "dir"
        for n in filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, folder)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def trained(tiny_clip, tiny_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(_args(tiny_clip, tiny_folder, out)) == 0
    return out


# -- 1. --overwrite replaces only what clipfit wrote ------------------------------------------------------------------
def test_export_overwrite_refuses_a_folder_holding_the_source_run(trained, tmp_path, capsys):
    box = tmp_path / "box"
    shutil.copytree(trained, box / "runB")
    (box / "notes.txt").write_text("mine")
    before = _tree(tmp_path)
    assert main(["export", str(box / "runB"), "--merged", str(box), "--overwrite"]) == 2
    assert "contains the source run" in _error(capsys)
    assert main(["export", str(box / "runB"), "--merged", str(box / "runB"), "--overwrite"]) == 2
    assert "is the source run" in _error(capsys)
    assert _tree(tmp_path) == before  # byte for byte, and nothing added beside it
    with pytest.raises(ClipfitError, match="contains the source run"):
        clipfit.load(box / "runB").export(box, overwrite=True)
    assert _tree(tmp_path) == before


def test_export_overwrite_replaces_an_export_and_nothing_else(trained, tmp_path, capsys):
    exp = tmp_path / "exp"
    assert main(["export", str(trained), "--merged", str(exp)]) == 0
    first = _tree(exp)
    assert "manifest.json" in first and json.loads((exp / "manifest.json").read_text())["kind"] == "export"
    assert main(["export", str(trained), "--merged", str(exp), "--overwrite"]) == 0  # an export: replaced
    assert set(_tree(exp)) == set(first)
    (exp / "notes.txt").write_text("mine")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("a")
    before = _tree(tmp_path)
    assert main(["export", str(trained), "--merged", str(exp), "--overwrite"]) == 2
    assert "it holds 'notes.txt', which clipfit did not write" in _error(capsys)
    assert main(["export", str(trained), "--merged", str(tmp_path / "mine"), "--overwrite"]) == 2
    assert "no clipfit export" in _error(capsys)
    assert _tree(tmp_path) == before
    assert main(["export", str(trained), "--merged", str(tmp_path / "new"), "--overwrite"]) == 0  # nothing there


def test_train_overwrite_refuses_the_image_folder_it_trains_on(tiny_clip, tiny_folder, tmp_path, capsys):
    photos = tmp_path / "photos"
    shutil.copytree(tiny_folder, photos)
    before = _tree(tmp_path)
    assert main(_args(tiny_clip, photos, photos, "--overwrite")) == 2
    assert "is the folder of the training images" in _error(capsys)
    assert main(_args(tiny_clip, photos, tmp_path, "--overwrite")) == 2  # a parent of it
    assert "contains the folder of the training images" in _error(capsys)
    with pytest.raises(ClipfitError, match="is the folder of the training images"):
        clipfit.train(tiny_clip, dataset=f"imagefolder:{photos}", out=photos, shots=4, overwrite=True, progress=False,
                      **FAST)
    assert _tree(tmp_path) == before  # every image, untouched


def test_train_overwrite_refuses_a_folder_of_other_runs_or_files(tiny_clip, tiny_folder, trained, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(trained, runs / "a")
    shutil.copytree(trained, runs / "b")
    before = _tree(tmp_path)
    assert main(_args(tiny_clip, tiny_folder, runs, "--overwrite")) == 2
    assert "no clipfit run" in _error(capsys)
    (runs / "a" / "notes.txt").write_text("mine")  # a run with a file of the user's in it
    before = _tree(tmp_path)
    assert main(_args(tiny_clip, tiny_folder, runs / "a", "--overwrite")) == 2
    assert "it holds 'notes.txt', which clipfit did not write" in _error(capsys)
    assert _tree(tmp_path) == before
    assert main(["export", str(runs / "b"), "--merged", str(tmp_path / "exp")]) == 0
    capsys.readouterr()
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "exp", "--overwrite")) == 2  # an export is no run
    assert "is a clipfit export, not a run" in _error(capsys)
    assert main(_args(tiny_clip, tiny_folder, runs / "b", "--overwrite")) == 0  # a run: replaced
    assert not (runs / "notes.txt").exists() and (runs / "a" / "notes.txt").read_text() == "mine"

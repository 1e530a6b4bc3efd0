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
from test_faults import FAST, _args, _error  # a train command on the tiny model; the one 'clipfit: error:' line


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


# -- 2. image folders: a symbolic link is followed once --------------------------------------------------------------
def test_a_symlink_loop_or_second_path_counts_each_image_once(tiny_clip, tiny_folder, tmp_path, monkeypatch, capsys):
    from clipfit.data.readers.image_folder import read_image_folder

    monkeypatch.setattr("clipfit.progress._WARNED", set())  # a warning is given once per process

    plain = read_image_folder(tiny_folder)
    loop = tmp_path / "loop"
    shutil.copytree(tiny_folder, loop)
    (loop / "red" / "up").symlink_to("..")  # 'red' would absorb every class, itself included, again and again
    (loop / "green" / "again.png").symlink_to("00.png")  # a second path to one image
    (loop / "blue" / "reds").symlink_to("../red")  # another class's images under this label
    task = read_image_folder(loop)
    for split in ("train", "val", "test"):
        assert [(it.key, it.label) for it in getattr(task, split)] == \
               [(it.key, it.label) for it in getattr(plain, split)], split
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipfit: warning: image folder") and "\n" not in err and "(and 2 more)" in err, err
    assert main(_args(tiny_clip, loop, tmp_path / "r", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["test"]["all"]["n"] == len(plain.test)


def test_a_symlink_out_of_the_image_folder_is_named_as_such(tiny_clip, tiny_folder, tmp_path, capsys):
    photos = tmp_path / "photos"
    shutil.copytree(tiny_folder, photos)
    (tmp_path / "elsewhere.png").write_bytes((photos / "red" / "00.png").read_bytes())
    (photos / "red" / "link.png").symlink_to(tmp_path / "elsewhere.png")
    assert main(_args(tiny_clip, photos, tmp_path / "r")) == 2
    err = _error(capsys)
    assert "red/link.png" in err and "outside the image folder" in err and "split file" not in err


# -- 3. grids: a repeat is no second sample ---------------------------------------------------------------------------
@pytest.mark.parametrize("flag, value, dup", [("--seeds", "1,1", "1"), ("--methods", "zeroshot,zeroshot", "zeroshot"),
                                              ("--shots", "1,1", "1")])
def test_grids_refuse_a_seed_method_or_shot_count_given_twice(tiny_clip, tiny_folder, tmp_path, capsys, flag, value,
                                                              dup):
    args = ["fewshot", "--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots", "1", "--methods",
            "zeroshot", "--seeds", "1", "--out", str(tmp_path / "g"), "--quiet"]
    args[args.index(flag) + 1] = value
    assert main(args) == 2
    assert f"{dup} is given twice" in _error(capsys)
    assert not (tmp_path / "g").exists()
    with pytest.raises(ClipfitError, match="1 is given twice"):
        clipfit.base2new(tiny_clip, dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "g", seeds=[1, 1])


def test_a_run_shared_by_every_seed_counts_once(tiny_clip, tiny_folder, tmp_path):
    res = clipfit.fewshot(tiny_clip, dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "g", methods=["zeroshot"],
                          seeds=[1, 2, 3], shots=2, progress=False)
    row = res.rows()[0]  # zero-shot trains nothing: one run for all seeds, one value
    assert row["seeds"] == [1] and len(row["accuracy_values"]) == 1 and row["accuracy_std"] == 0.0
    assert "±" not in next(ln for ln in res.table().splitlines() if ln.startswith("zeroshot"))


# -- 4. --items: every entry checked against the dataset --------------------------------------------------------------
def _items(trained: Path, tmp_path: Path, change) -> Path:
    items = json.loads((trained / "items.json").read_text())
    change(items)
    (tmp_path / "items.json").write_text(json.dumps(items))
    return tmp_path / "items.json"


@pytest.mark.parametrize("change, expect", [
    (lambda it: it["train"][0].__setitem__(1, 7), "label 7 is outside 0..2"),
    (lambda it: it["train"][0].__setitem__(2, "purple"), "not 'purple'"),
    # a label and class name that agree, on an image of another class folder: trained on, mislabelled
    (lambda it: it["train"].__setitem__(0, [next(r[0] for r in it["train"] if r[1] != it["train"][0][1]),
                                            it["train"][0][1], it["train"][0][2]]), "labels that image"),
    (lambda it: it["train"][0].__setitem__(0, "red/nope.png"), "'red/nope.png' is not an image of"),
    (lambda it: it["train"].append(list(it["train"][0])), "is listed twice"),
    (lambda it: it["train"][0].__setitem__(1, "0"), "expected [image, label, class name]"),
    (lambda it: it.__setitem__("train", []), "lists no training items"),
    (lambda it: it.pop("train"), "is not a list of training items"),
])
def test_items_are_checked_before_training(tiny_clip, tiny_folder, trained, tmp_path, capsys, change, expect):
    path = _items(trained, tmp_path, change)
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "r", "--items", str(path))) == 2
    assert expect in _error(capsys)
    assert not (tmp_path / "r").exists()


def test_items_of_a_test_image_are_refused(tiny_clip, tiny_folder, trained, tmp_path, capsys):
    from clipfit.data.readers.image_folder import read_image_folder

    test = read_image_folder(tiny_folder).test[0]
    path = _items(trained, tmp_path, lambda it: it["train"].__setitem__(0, [test.key, test.label, test.classname]))
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "r", "--items", str(path))) == 2
    assert "is a test image" in _error(capsys)


# -- 5. templates: exactly one {} -------------------------------------------------------------------------------------
@pytest.mark.parametrize("template, expect", [("a {} of {}", "2 replacement fields"), ("a {x} photo {}", "2 replacement"),
                                              ("a {", "Single '{'"), ("a {0}", "'{0}' instead of '{}'"),
                                              ("a photo", "no '{}'")])
def test_templates_with_other_braces_are_one_line(tiny_clip, tiny_folder, tmp_path, capsys, template, expect):
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "r", "--template", template)) == 2
    assert expect in _error(capsys)
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "r", "--method", "zeroshot", "--set",
                      f"templates=a photo of a {{}}.|{template}", settings={})) == 2
    assert "--set templates:" in _error(capsys)
    with pytest.raises(ClipfitError, match="--template"):
        clipfit.fewshot(tiny_clip, dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "g", template=template)
    assert not (tmp_path / "r").exists() and not (tmp_path / "g").exists()


def test_literal_braces_are_written_doubled(tiny_clip, tiny_folder, tmp_path):
    run = clipfit.train(tiny_clip, dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "r", shots=2,
                        template="{{a}} photo of a {}.", progress=False, **FAST)
    assert run.config["templates"] == ["{{a}} photo of a {}."]


# -- 6. an empty --root ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["train", "--dataset", "eurosat", "--out", "{out}"],
    ["fewshot", "--dataset", "eurosat", "--out", "{out}"],
    ["paper", "run", "clipfit:table1", "--dry-run", "--out", "{out}"],
])
@pytest.mark.parametrize("root", ["", "  "])
def test_an_empty_root_is_refused(tmp_path, capsys, command, root):
    assert main([a.replace("{out}", str(tmp_path / "o")) for a in command] + ["--root", root, "--quiet"]) == 2
    assert f"--root {root!r}: give the folder" in _error(capsys)
    assert not (tmp_path / "o").exists()


# -- 7. the Python API checks its arguments at the edge --------------------------------------------------------------
def test_predict_takes_paths_pil_images_and_arrays_and_refuses_the_rest(trained, tiny_folder):
    import numpy as np
    from PIL import Image

    run = clipfit.load(trained)
    path = f"{tiny_folder}/red/00.png"
    by_path = run.predict([path], topk=3)[0]["top"]
    assert run.predict(path, topk=3)[0]["top"] == by_path  # one path is one image, not a list of characters
    assert run.predict(np.asarray(Image.open(path)), topk=3)[0]["top"] == by_path  # an HxWx3 uint8 array
    assert run.predict([np.asarray(Image.open(path).convert("L"))], topk=1)  # HxW greyscale
    top = run.predict([path], classes="red,blue", topk=2)[0]["top"]  # a comma string, as --classes
    assert {t["class"] for t in top} == {"red", "blue"}
    for bad, expect in [([], "at least one image"), ([Image.new("RGB", (0, 0))], "0x0"), (None, "NoneType"),
                        ([None], "NoneType"), ([np.zeros((4, 4, 3), np.float64)], "uint8"),
                        ([np.zeros((2, 4, 4, 3), np.uint8)], "shape"), ([7], "int"), ([path], None)]:
        if expect is None:
            with pytest.raises(ClipfitError, match="topk"):
                run.predict(bad, topk=True)
            continue
        with pytest.raises(ClipfitError, match=expect):
            run.predict(bad)


@pytest.mark.parametrize("kw, expect", [({"shots": "4"}, "shots='4': expected an integer"),
                                        ({"shots": 1.5}, "shots=1.5: expected an integer"),
                                        ({"seed": None}, "seed=None: expected an integer"),
                                        ({"out": None}, "out=None: expected a folder"),
                                        ({"out": ""}, "out='': expected a folder"),
                                        ({"root": ""}, "--root ''"),
                                        ({"method": ["clipfit"]}, "method=\\['clipfit'\\]")])
def test_train_refuses_arguments_of_the_wrong_type(tiny_folder, tmp_path, kw, expect):
    args = {"dataset": f"imagefolder:{tiny_folder}", "out": tmp_path / "r", **kw}
    with pytest.raises(ClipfitError, match=expect):
        clipfit.train(**args)


def test_grid_lists_take_lists_or_comma_strings_never_characters(tiny_clip, tiny_folder, tmp_path):
    res = clipfit.fewshot(tiny_clip, dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "g", methods="zeroshot",
                          seeds=1, shots="2", progress=False)
    assert res.summary["methods"] == ["zeroshot"] and res.summary["seeds"] == [1] and res.summary["shots"] == [2]
    with pytest.raises(ClipfitError, match="unknown dataset 'nosuch'"):  # not "unknown method 'z'"
        clipfit.fewshot(dataset="nosuch", out=tmp_path / "h", methods="zeroshot,clipfit")
    for kw, expect in [({"seeds": "1,x"}, "comma-separated integers"), ({"seeds": [1.5]}, "list of ints"),
                       ({"seeds": []}, "at least one"), ({"methods": [None]}, "list of strs"),
                       ({"shots": [True]}, "list of ints")]:
        with pytest.raises(ClipfitError, match=expect):
            clipfit.fewshot(dataset="nosuch", out=tmp_path / "h", **kw)


# -- 8. settings without a bound, and the right blame ---------------------------------------------------------------
def test_a_batch_larger_than_the_training_set_is_clamped_with_a_line(tiny_clip, tiny_folder, tmp_path, capsys):
    args = [a for a in _args(tiny_clip, tiny_folder, tmp_path / "r", settings={**FAST, "batch_size": 10**20})
            if a != "--quiet"]
    assert main(args) == 0
    assert "batch_size=100000000000000000000 is more than the 12 training images" in capsys.readouterr().err
    ref = clipfit.train(tiny_clip, dataset=f"imagefolder:{tiny_folder}", out=tmp_path / "ref", shots=4,
                        progress=False, **{**FAST, "batch_size": 12})
    assert (ref.dir / "tuned.safetensors").read_bytes() == (tmp_path / "r" / "tuned.safetensors").read_bytes()


def test_a_nonfinite_loss_names_its_terms_and_the_settings_that_feed_them(tiny_clip, tiny_folder, tmp_path, capsys):
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "r", settings={**FAST, "beta": 1e308})) == 2
    err = _error(capsys)
    assert "beta=1e+308" in err and "loss became nan at epoch 1" in err
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "r", settings={**FAST, "lr": 1e30})) == 2
    err = _error(capsys)
    assert "non-finite: ce, kd" in err and "lr=1e+30" in err


# -- 9. several processes: the README's recipe starts them, and a run says how many it had -------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_readme_multi_process_recipe_trains_in_two_processes(tiny_clip, tiny_folder, tmp_path):
    import re
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("**Several processes (data parallel)**", 1)[1].split("\n- **", 1)[0]
    recipe = re.search(r"`(torchrun [^`]*?) train \.\.\.`", section.replace("\n  ", " ")).group(1).split()
    recipe[0] = str(Path(sys.executable).with_name("torchrun"))
    src = str(Path(clipfit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1", "PET_MASTER_PORT": str(_free_port())}
    out = tmp_path / "two"
    proc = subprocess.run([*recipe, "train", "--model", tiny_clip, "--dataset", f"imagefolder:{tiny_folder}", "--shots",
                           "4", "--out", str(out), "--quiet", *set_args(FAST)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((out / "config.json").read_text())["processes"] == 2
    assert proc.stdout.count("in 2 processes;") == 1  # the main process reports, once


def test_a_launcher_that_started_one_process_is_named(tiny_clip, tiny_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("clipfit.progress._WARNED", set())  # a warning is given once per process
    monkeypatch.delenv("WORLD_SIZE", raising=False)  # what `accelerate launch --cpu --num_processes 2` sets
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "r")) == 0
    cap = capsys.readouterr()
    assert "in 1 process;" in cap.out and json.loads((tmp_path / "r" / "config.json").read_text())["processes"] == 1
    assert "`accelerate launch --cpu` started this one process only" in cap.err and "torchrun" in cap.err


# -- 10. classes whose prompts tokenize alike -----------------------------------------------------------------------
def test_classes_with_the_same_prompt_tokens_are_named(tiny_clip, tiny_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("clipfit.progress._WARNED", set())  # a warning is given once per process
    long = "red green blue " * 10  # beyond the tiny model's 16 text positions: cut alike
    photos = tmp_path / "photos"
    for i, name in enumerate(["red", "green", "blue"]):
        shutil.copytree(Path(tiny_folder) / name, photos / f"{long.replace(' ', '_')}{i}")
    assert main(_args(tiny_clip, photos, tmp_path / "r")) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if "same prompt tokens" in ln]
    assert len(err) == 1 and err[0].startswith("clipfit: warning: classes ") and "...e red green blue 0'" in err[0]
    assert main(_args(tiny_clip, tiny_folder, tmp_path / "ok")) == 0
    assert "same prompt" not in capsys.readouterr().err


# -- 11. one-liners that were misleading ----------------------------------------------------------------------------
def test_a_finished_run_without_its_weights_says_so(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "tuned.safetensors").unlink()
    assert main(["eval", str(run)]) == 2
    err = _error(capsys)
    assert "the run finished, but the file was removed since" in err and "--resume" not in err


def test_a_missing_crossdataset_source_does_not_suggest_skip_missing(tiny_clip, tmp_path, capsys):
    (tmp_path / "root").mkdir()
    assert main(["crossdataset", "--model", tiny_clip, "--source", "eurosat", "--targets", "dtd", "--root",
                 str(tmp_path / "root"), "--methods", "zeroshot", "--seeds", "1", "--out", str(tmp_path / "x"),
                 "--quiet"]) == 2
    err = _error(capsys)
    assert "eurosat" in err and "--skip-missing" not in err


def test_sigterm_is_handled_as_ctrl_c(tiny_clip, tiny_folder, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from clipfit.engine.rundir import RunDir

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(clipfit.__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "clipfit.cli", *_args(tiny_clip, tiny_folder, out,
                             settings={**FAST, "epochs": 100000})], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ckpt = RunDir(out).partial.file("checkpoint.safetensors")
    while not ckpt.exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert RunDir(out).lock_file.exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143
    assert err.strip() == f"clipfit: terminated (SIGTERM); continue with `clipfit train --out {out} --resume`"
    assert not RunDir(out).lock_file.exists() and RunDir(out).has_checkpoint

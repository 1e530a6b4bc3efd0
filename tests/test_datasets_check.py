"""`clipfit datasets check` on fixtures written in each dataset's real on-disk format, the one wording of a missing
dataset folder, and the table of where every dataset comes from (docs/datasets.md is written from it)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import clipfit
from clipfit.cli import main
from clipfit.data.catalogue import DATASETS, load_task
from clipfit.data.sources import SOURCES, markdown
from clipfit.errors import ClipfitError

REPO = Path(__file__).resolve().parents[1]


def check_json(capsys, *args: str) -> tuple[int, dict]:
    rc = main(["datasets", "check", *args, "--json", "--quiet"])
    return rc, {d["name"]: d for d in json.loads(capsys.readouterr().out)["datasets"]}


def test_a_complete_coop_fixture_is_found_with_exit_status_0(coop_root: Path, capsys):
    rc, found = check_json(capsys, "--root", str(coop_root), "oxford_pets", "aircraft", "imagenet", "imagenet-a")
    assert rc == 0 and list(found) == ["oxford_pets", "fgvc_aircraft", "imagenet", "imagenet_a"]
    assert {d["status"] for d in found.values()} == {"found"}
    assert found["oxford_pets"]["sizes"] == {"train": 3, "val": 1, "test": 2} and found["oxford_pets"]["classes"] == 2
    assert found["oxford_pets"]["template"] == "a photo of a {}, a type of pet." and found["imagenet"]["fix"] == []
    assert main(["datasets", "check", "--root", str(coop_root), "oxford_pets"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:4] == ["oxford_pets", "found", "2", "classes;"] and len(out) == 2


def test_an_image_of_the_split_file_deleted_is_named_exactly(coop_root: Path, capsys):
    os.remove(coop_root / "oxford_pets" / "images" / "abyssinian_3.jpg")  # the val image
    rc, found = check_json(capsys, "--root", str(coop_root), "oxford_pets", "imagenet")
    assert rc == 1 and found["imagenet"]["status"] == "found"
    pets = found["oxford_pets"]
    assert pets["status"] == "incomplete"
    assert pets["detail"] == (f"its split names 6 images, 5 of them are on disk under "
                              f"{(coop_root / 'oxford_pets' / 'images').resolve()} (the first missing: abyssinian_3.jpg)")
    assert any("split_zhou_OxfordPets.json: https://drive.google.com/" in x for x in pets["fix"])


def test_a_missing_split_file_is_named_with_where_to_get_it(coop_root: Path, capsys):
    split = coop_root / "oxford_pets" / "split_zhou_OxfordPets.json"
    os.remove(split)
    rc, found = check_json(capsys, "--root", str(coop_root), "oxford_pets")
    assert rc == 1 and found["oxford_pets"]["status"] == "incomplete"
    assert found["oxford_pets"]["detail"].startswith(f"split file not found: {split} ")
    (coop_root / "imagenet" / "classnames.txt").unlink()  # ImageNet's class names file
    rc, found = check_json(capsys, "--root", str(coop_root), "imagenet")
    detail = found["imagenet"]["detail"]
    assert found["imagenet"]["status"] == "incomplete" and detail.count("classnames.txt") == 2  # the path once, the hint
    assert detail.count(str(coop_root / "imagenet" / "classnames.txt")) == 1


def test_every_missing_dataset_gets_its_folder_source_and_split_at_once(tmp_path: Path, capsys):
    rc, found = check_json(capsys, "--root", str(tmp_path), "--suite", "coop11")
    assert rc == 1 and len(found) == 11 and {d["status"] for d in found.values()} == {"missing"}
    dtd = found["dtd"]
    assert dtd["detail"] == f"{tmp_path / 'dtd'}/ not found"
    assert dtd["fix"] == [f"put in {tmp_path / 'dtd'}/: images/, split_zhou_DescribableTextures.json",
                          "get DTD dtd-r1.0.1.tar.gz: https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
                          "get split_zhou_DescribableTextures.json: https://drive.google.com/file/d/"
                          "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x/view", "split: CoOp's split_zhou_DescribableTextures.json"]
    rc, found = check_json(capsys, "--root", str(tmp_path), "--paper", "clipfit:table3")
    assert list(found) == ["imagenet", "imagenetv2", "imagenet_sketch"]
    rc, found = check_json(capsys, "--root", str(tmp_path))  # default: every dataset read from --root
    assert list(found) == list(SOURCES)


def test_verify_decodes_every_image(coop_root: Path, capsys):
    (coop_root / "fgvc_aircraft" / "images" / "1005.jpg").write_bytes(b"not a jpeg")
    assert check_json(capsys, "--root", str(coop_root), "fgvc_aircraft")[1]["fgvc_aircraft"]["status"] == "found"
    rc, found = check_json(capsys, "--root", str(coop_root), "fgvc_aircraft", "--verify")
    assert rc == 1 and found["fgvc_aircraft"]["status"] == "incomplete"
    assert found["fgvc_aircraft"]["detail"].startswith("1 of the 6 images cannot be decoded (first: cannot read image ")
    assert "1005.jpg" in found["fgvc_aircraft"]["detail"]


def test_the_python_api_and_user_mistakes(coop_root: Path, capsys):
    res = clipfit.datasets_check(str(coop_root), "oxford_pets,dtd")
    assert not res.ok and [f.status for f in res.findings] == ["found", "missing"]
    assert "dtd" in res.text() and res.data["ok"] is False
    assert clipfit.datasets_check(str(coop_root), ["pets"]).ok
    for args, needle in ((["--root", str(coop_root / "nope")], "is not a folder"),
                         (["--root", str(coop_root), "nosuch"], "unknown dataset 'nosuch'"),
                         (["--root", str(coop_root), "--suite", "coop12"], "--suite coop12: choose one of"),
                         (["--root", str(coop_root), "--paper", "layernorm:figure2"], "reads no dataset")):
        assert main(["datasets", "check", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err, err


@pytest.mark.parametrize("name", list(SOURCES))
def test_one_wording_for_a_missing_dataset_folder(name: str, tmp_path: Path):
    with pytest.raises(ClipfitError) as e:
        load_task(name, str(tmp_path))
    msg, folder = str(e.value), tmp_path / SOURCES[name].folder
    assert msg.startswith(f"dataset {name}: folder {folder} not found (get ") and "\n" not in msg
    assert msg.count(str(folder)) == 1 and SOURCES[name].fetch[0].url in msg


def test_every_dataset_read_from_root_has_a_source_and_docs_list_them_from_the_table():
    assert {n for n in DATASETS.list() if DATASETS.get(n).needs_root} == set(SOURCES)
    assert all(DATASETS.get(n).template for n in SOURCES)  # known without the data (dry runs, CLIPFit Table 8)
    doc = (REPO / "docs" / "datasets.md").read_text()
    assert markdown() in doc, "docs/datasets.md is stale: run python scripts/datasets_doc.py"
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "datasets_doc.py"), "--check"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr

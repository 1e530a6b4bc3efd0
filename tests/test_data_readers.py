"""Dataset readers on tiny fake data: CoOp layout, image folders, Hugging Face datasets, packaged sets."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipfit.backbone import ImageSpec
from clipfit.data.catalogue import DATASETS, list_datasets, load_task
from clipfit.data.readers.coop_layout import read_split_file
from clipfit.data.readers.image_folder import split_counts
from clipfit.data.transforms import eval_transform
from clipfit.errors import ClipfitError
from clipfit.families import FAMILIES
from conftest import img


def keys(items) -> list[str]:
    return [it.key for it in items]


# ------------------------------------------------------------------ CoOp layout


def test_oxford_pets_split_file(coop_root: Path):
    task = load_task("oxford_pets", str(coop_root))
    assert task.classnames == ["abyssinian", "yorkshire terrier"]  # label order; '_' -> ' '
    assert task.template == "a photo of a {}, a type of pet."
    assert keys(task.train) == ["yorkshire_terrier_0.jpg", "abyssinian_1.jpg", "yorkshire_terrier_2.jpg"]  # order kept
    assert [it.label for it in task.train] == [1, 0, 1]
    assert len(task.val) == 1 and len(task.test) == 2
    assert task.reader(task.test[0].key).size == (12, 10)
    assert load_task("pets", str(coop_root)).train == task.train  # alias


def test_fgvc_aircraft_text_files(coop_root: Path):
    task = load_task("fgvc_aircraft", str(coop_root))
    assert task.classnames == ["707-320", "A300B4", "F-16A/B"]
    assert [(it.key, it.label) for it in task.train] == [("1001.jpg", 1), ("1002.jpg", 0), ("1003.jpg", 2)]
    assert task.template == "a photo of a {}, a type of aircraft."
    assert task.reader(task.val[0].key).mode == "RGB"


def test_imagenet_folders(coop_root: Path):
    task = load_task("imagenet", str(coop_root))
    assert task.classnames == ["tench", "goldfish", "great white shark"]  # sorted wnids
    assert keys(task.train)[:2] == ["train/n01440764/n01440764_0.JPEG", "train/n01440764/n01440764_1.JPEG"]
    assert len(task.train) == 6 and len(task.test) == 6
    assert task.val == []  # no validation split: CoOp validates on the test set, which we refuse to do
    assert all(k.startswith("val/") for k in keys(task.test))
    task.reader(task.test[-1].key)


def test_imagenet_variants(coop_root: Path):
    a = load_task("imagenet_a", str(coop_root))  # classnames.txt falls back to imagenet/classnames.txt
    assert a.classnames == ["goldfish", "great white shark"] and [it.label for it in a.test] == [0, 1]
    assert a.train == [] and a.val == [] and DATASETS["imagenet_a"].test_only
    v2 = load_task("imagenet-v2", str(coop_root))
    assert v2.classnames == ["tench", "goldfish", "great white shark"]
    assert [(it.key, it.label, it.classname) for it in v2.test] == [("0/a.jpeg", 0, "tench"), ("2/a.jpeg", 2, "great white shark")]
    with pytest.raises(ClipfitError, match="imagenet-sketch"):
        load_task("imagenet_sketch", str(coop_root))


def test_catalogue_names():
    names = {e.name for e in list_datasets()}
    expected = {"imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft",
                "sun397", "dtd", "eurosat", "ucf101", "imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r",
                "fashion_mnist", "textile", "digits"}
    assert expected <= names
    assert all(DATASETS[n].test_only for n in ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"))
    assert not DATASETS["digits"].needs_root and DATASETS["eurosat"].needs_root


def test_missing_split_file_names_it(coop_root: Path):
    (coop_root / "eurosat" / "2750").mkdir(parents=True)
    with pytest.raises(ClipfitError) as e:
        load_task("eurosat", str(coop_root))
    msg = str(e.value)
    assert str(coop_root / "eurosat" / "split_zhou_EuroSAT.json") in msg and "DATASETS.md" in msg and "\n" not in msg
    with pytest.raises(ClipfitError, match="dataset dtd: folder .*dtd not found"):
        load_task("dtd", str(coop_root))
    with pytest.raises(ClipfitError, match="--root"):
        load_task("dtd")


@pytest.mark.parametrize("bad", ["../outside.jpg", "a/../../outside.jpg", "/etc/passwd", "C:\\x.jpg", "..\\x.jpg"])
def test_split_paths_cannot_escape(tmp_path: Path, bad: str):
    img(tmp_path / "outside.jpg")
    (tmp_path / "images").mkdir()
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [[bad, 0, "a"]], "val": [], "test": [["x.jpg", 0, "a"]]}))
    with pytest.raises(ClipfitError, match=r"absolute|'\.\.'"):
        read_split_file(split, tmp_path / "images")


def test_user_split_file_and_bad_labels(tmp_path: Path):
    for n in ("a.png", "b.png"):
        img(tmp_path / "ims" / n)
    split = tmp_path / "mine.json"
    split.write_text(json.dumps({"train": [["a.png", 0, "cat"]], "test": [["b.png", 1, "dog"]]}))  # no "val"
    task = read_split_file(split, tmp_path / "ims", template="{}.")
    assert task.classnames == ["cat", "dog"] and task.val == [] and task.name == "mine"
    split.write_text(json.dumps({"train": [["a.png", 0, "cat"]], "test": [["b.png", 2, "dog"]]}))
    with pytest.raises(ClipfitError, match="without gaps"):
        read_split_file(split, tmp_path / "ims")
    split.write_text("{not json")
    with pytest.raises(ClipfitError, match="cannot read split file"):
        read_split_file(split, tmp_path / "ims")


# ------------------------------------------------------------------ image folders


def test_split_counts_rule():
    assert split_counts(10) == (5, 2, 3)
    assert split_counts(100) == (50, 20, 30)
    assert split_counts(3) == (1, 1, 1)
    assert split_counts(2) == (1, 0, 1)
    assert split_counts(1) == (1, 0, 0)


def test_imagefolder_flat(tmp_path: Path):
    root = tmp_path / "pics"
    for c, n in (("golden_retriever", 10), ("cat", 3)):
        for i in range(n):
            img(root / c / f"{i:02d}.png")
    img(root / "cat" / "deep" / "x.webp")  # nested images count
    (root / "cat" / "notes.txt").write_text("not an image")
    task = load_task(f"imagefolder:{root}")
    assert task.classnames == ["cat", "golden retriever"] and task.template == "a photo of a {}."
    per = lambda items, y: [it for it in items if it.label == y]  # noqa: E731
    assert [len(per(s, 1)) for s in (task.train, task.val, task.test)] == [5, 2, 3]
    assert [len(per(s, 0)) for s in (task.train, task.val, task.test)] == [2, 1, 1]
    all_keys = keys(task.train) + keys(task.val) + keys(task.test)
    assert len(set(all_keys)) == 14
    again = load_task(f"imagefolder:{root}")
    assert (again.train, again.val, again.test) == (task.train, task.val, task.test)
    assert task.reader(task.train[0].key).size == (12, 10)


def test_imagefolder_presplit(tmp_path: Path):
    root = tmp_path / "ds"
    for split, n in (("train", 5), ("val", 1), ("test", 2)):
        for c in ("a", "b"):
            for i in range(n):
                img(root / split / c / f"{i}.jpg")
    task = load_task(f"imagefolder:{root}")
    assert (len(task.train), len(task.val), len(task.test)) == (10, 2, 4)
    assert all(k.startswith("test/") for k in keys(task.test))
    # without val/: validation carved from train/ (20% per class)
    os.rename(root / "val", tmp_path / "val_moved")
    task = load_task(f"imagefolder:{root}")
    assert (len(task.train), len(task.val), len(task.test)) == (8, 2, 4)
    assert all(k.startswith("train/") for k in keys(task.val))
    # with val/ but no test/: val/ is the test set
    os.rename(root / "test", root / "val")
    task = load_task(f"imagefolder:{root}")
    assert (len(task.train), len(task.val), len(task.test)) == (8, 2, 4)
    assert all(k.startswith("val/") for k in keys(task.test))
    img(root / "val" / "zebra" / "0.jpg")
    with pytest.raises(ClipfitError, match="zebra"):
        load_task(f"imagefolder:{root}")


def test_imagefolder_errors(tmp_path: Path):
    with pytest.raises(ClipfitError, match="image folder not found"):
        load_task(f"imagefolder:{tmp_path / 'nope'}")
    with pytest.raises(ClipfitError, match="no class folders"):
        load_task(f"imagefolder:{tmp_path}")
    (tmp_path / "empty_class").mkdir()
    img(tmp_path / "full" / "0.png")
    with pytest.raises(ClipfitError, match="empty_class has no images"):
        load_task(f"imagefolder:{tmp_path}")


# ------------------------------------------------------------------ Hugging Face datasets


def _hf_split(n: int, offset: int = 0, image_col: str = "picture", label_col: str = "y"):
    datasets = pytest.importorskip("datasets")
    feats = datasets.Features({image_col: datasets.Image(), label_col: datasets.ClassLabel(names=["red_panda", "owl"]),
                               "note": datasets.Value("string")})
    ims = [Image.new("RGB", (9 + i % 3, 8), (i * 10, 0, 0)) for i in range(offset, offset + n)]
    return datasets.Dataset.from_dict({image_col: ims, label_col: [i % 2 for i in range(n)], "note": ["x"] * n}, features=feats)


def test_hf_save_to_disk_roundtrip(tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "hfds"
    datasets.DatasetDict(train=_hf_split(10), test=_hf_split(4, 100)).save_to_disk(str(path))
    task = load_task(f"hf:{path}")
    assert task.classnames == ["red panda", "owl"]
    assert (len(task.train), len(task.val), len(task.test)) == (8, 2, 4)  # val: 20% of each class from train
    assert all(k.startswith("train/") for k in keys(task.train) + keys(task.val)) and not set(task.train) & set(task.val)
    assert task.test[1].key == "test/1" and task.test[1].label == 1
    im = task.reader("train/4")
    assert im.mode == "RGB" and im.size == (10, 8) and im.getpixel((0, 0)) == (40, 0, 0)
    with pytest.raises(ClipfitError, match="no image"):
        task.reader("train/99")
    # explicit columns and splits: use the test split as validation too
    task2 = load_task(f"hf:{path}#image=picture,label=y,val=test")
    assert len(task2.train) == 10 and keys(task2.val) == keys(task2.test)


def test_hf_variants_and_errors(tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    single = tmp_path / "single"
    _hf_split(20).save_to_disk(str(single))  # a lone Dataset: split per class 50/20/30
    task = load_task(f"hf:{single}")
    assert (len(task.train), len(task.val), len(task.test)) == (10, 4, 6)
    no_test = tmp_path / "no_test"
    datasets.DatasetDict(train=_hf_split(6), validation=_hf_split(2)).save_to_disk(str(no_test))
    with pytest.raises(ClipfitError, match="no test split"):
        load_task(f"hf:{no_test}")
    assert len(load_task(f"hf:{no_test}#test=validation").test) == 2
    odd = tmp_path / "odd"
    datasets.DatasetDict(train=_hf_split(6, image_col="img", label_col="lab"), test=_hf_split(2, image_col="img", label_col="lab")).save_to_disk(str(odd))
    assert load_task(f"hf:{odd}").classnames == ["red panda", "owl"]  # found by feature type
    with pytest.raises(ClipfitError, match="no column 'nope'"):
        load_task(f"hf:{odd}#image=nope")
    with pytest.raises(ClipfitError, match="bad hf: option"):
        load_task(f"hf:{odd}#colour=blue")
    with pytest.raises(ClipfitError, match="not found"):
        load_task(f"hf:{tmp_path / 'missing'}")


# ------------------------------------------------------------------ packaged data


def test_digits():
    pytest.importorskip("sklearn")
    task = load_task("digits")
    assert task.classnames[:3] == ["zero", "one", "two"] and task.template == "a photo of the digit {}."
    sizes = (len(task.train), len(task.val), len(task.test))
    assert sum(sizes) == 1797 and sizes[0] > sizes[2] > sizes[1]
    assert not set(keys(task.train)) & set(keys(task.test))
    a = np.asarray(task.reader(task.train[0].key))
    assert a.shape == (8, 8, 3) and a.max() > 200
    assert keys(load_task("digits").test) == keys(task.test)


def test_textile():
    pytest.importorskip("conformal_clip_data")
    task = load_task("textile")
    assert len(task.classnames) == 3 and task.classnames[0] == "defect-free textile"
    assert (len(task.train), len(task.val), len(task.test)) == (1000, 400, 600)
    assert task.reader(task.test[0].key).size == (250, 250)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_env_dir(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CLIPFIT_FASHION_MNIST", str(tmp_path))
    with pytest.raises(ClipfitError, match="Fashion-MNIST not found under .*apt-get install dataset-fashion-mnist"):
        load_task("fashion_mnist")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    task = load_task("fashion_mnist")
    assert (len(task.train), len(task.val), len(task.test)) == (10, 2, 5)
    assert task.val[0].key == "train/10" and task.test[3].classname == "dress"
    assert task.reader("test/4").size == (28, 28)


def test_fashion_mnist_installed(monkeypatch):
    monkeypatch.delenv("CLIPFIT_FASHION_MNIST", raising=False)
    if not os.path.exists("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"):
        pytest.skip("dataset-fashion-mnist is not installed")
    task = load_task("fashion_mnist")
    assert (len(task.train), len(task.val), len(task.test)) == (50000, 10000, 10000)
    assert task.classnames[0] == "t-shirt" and task.classnames[9] == "ankle boot"
    assert task.reader(task.test[0].key).size == (28, 28)


# ------------------------------------------------------------------ evaluation preprocessing


@pytest.mark.parametrize("wh,short,crop", [((37, 53), 32, 32), ((101, 67), 32, 32), ((61, 45), 40, 32), ((45, 61), 40, 32)])
def test_eval_transform_matches_clip_image_processor(tmp_path: Path, wh, short, crop):
    from transformers import AutoImageProcessor, CLIPImageProcessor

    CLIPImageProcessor(size={"shortest_edge": short}, crop_size={"height": crop, "width": crop},
                       image_mean=[0.48, 0.46, 0.41], image_std=[0.27, 0.26, 0.28]).save_pretrained(tmp_path)
    proc = AutoImageProcessor.from_pretrained(tmp_path)
    spec = FAMILIES.get("clip").image_spec(proc)
    assert spec == ImageSpec(size=crop, mean=(0.48, 0.46, 0.41), std=(0.27, 0.26, 0.28), resize=short)
    rng = np.random.default_rng(sum(wh))
    im = Image.fromarray(rng.integers(0, 256, (wh[1], wh[0], 3), dtype=np.uint8))
    ref = proc(images=im, return_tensors="pt")["pixel_values"][0]
    out = eval_transform(spec)(im)
    assert out.shape == ref.shape == (3, crop, crop)
    assert (out - ref).abs().max().item() < 1e-2

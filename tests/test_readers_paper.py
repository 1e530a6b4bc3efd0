"""The LayerNorm-tuning paper's datasets, read from tiny copies written in their real on-disk formats (MNIST idx
files, CIFAR's Python 2 pickles, WILDS metadata csvs, Mini-ImageNet csvs, CUB's text files), and the metrics."""
from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipfit.config import TrainConfig
from clipfit.data.catalogue import DATASETS, load_task
from clipfit.data.readers.digits_cifar import holdout
from clipfit.data.readers.episodic_sets import CUB_SPLIT, MINI_IMAGENET_NAMES
from clipfit.data.sampling import fewshot, keep_classes, subsample_classes
from clipfit.engine import loop, metrics
from clipfit.errors import ClipfitError


def png(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (value, 255 - value, 9)).save(path, format="PNG")  # lossless, whatever the name


def keys(items) -> list[str]:
    return [it.key for it in items]


def labels(items) -> list[int]:
    return [it.label for it in items]


def one_line_error(fn, *needles: str) -> str:
    with pytest.raises(ClipfitError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg
    return msg


# ------------------------------------------------------------------------------------------------------- MNIST


def write_idx(path: Path, a: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    data = header + a.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    d = tmp_path / "mnist"
    write_idx(d / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (50, 28, 28)))
    write_idx(d / "train-labels-idx1-ubyte.gz", np.arange(50) % 10)
    write_idx(d / "t10k-images-idx3-ubyte", np.full((7, 28, 28), 200))  # plain, as some mirrors ship them
    write_idx(d / "t10k-labels-idx1-ubyte", np.array([9, 8, 7, 6, 5, 4, 3]))
    return tmp_path


def test_mnist(mnist_root: Path):
    t = load_task("mnist", str(mnist_root))
    assert t.classnames == [str(d) for d in range(10)] and t.template == 'a photo of the number: "{}".'
    # 50 training images (< 20,000): a tenth is held out; the official test set whole
    assert (len(t.train), len(t.val), len(t.test)) == (45, 5, 7)
    assert sorted(keys(t.train) + keys(t.val)) == sorted(f"train/{i}" for i in range(50))
    assert labels(t.test) == [9, 8, 7, 6, 5, 4, 3] and all(it.label == int(it.key[6:]) % 10 for it in t.train)
    assert np.asarray(t.reader("test/2")).tolist()[0][0] == [200, 200, 200]
    assert load_task("mnist", str(mnist_root)).val == t.val  # deterministic


def test_holdout_sizes_are_table5s():
    for n, n_train in ((60_000, 58_000), (50_000, 48_000)):
        train, val = holdout(n, "x")
        assert (len(train), len(val)) == (n_train, 2_000) and not set(train) & set(val)
        assert sorted(train + val) == list(range(n))
    assert holdout(60_000, "mnist") == holdout(60_000, "mnist") != holdout(60_000, "cifar10")


def test_mnist_errors(mnist_root: Path):
    os.remove(mnist_root / "mnist" / "t10k-labels-idx1-ubyte")
    one_line_error(lambda: load_task("mnist", str(mnist_root)), "t10k-labels-idx1-ubyte", "idx file")
    (mnist_root / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"PK\x03\x04 not an idx file")
    one_line_error(lambda: load_task("mnist", str(mnist_root)), "t10k-labels-idx1-ubyte", "IDX")
    one_line_error(lambda: load_task("mnist", str(mnist_root / "mnist")), "dataset mnist: folder", "mnist/mnist not found")
    one_line_error(lambda: load_task("mnist", str(mnist_root / "nowhere")), "--root", "nowhere is not a folder")


# ------------------------------------------------------------------------------------------------------- CIFAR


class Py2Pickler(pickle._Pickler):
    """Writes pickles as CIFAR's were written (Python 2 cPickle, protocol 2): strings as 8-bit str opcodes and
    numpy's array constructor under its Python 2 module name."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_str8(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(data)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + data)
        self.memoize(obj)

    dispatch[str] = save_str8
    dispatch[bytes] = save_str8


def write_py2_pickle(path: Path, obj) -> None:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))


def cifar_rows(colours: list[tuple[int, int, int]]) -> np.ndarray:
    """CIFAR rows: 1024 red values, then 1024 green, then 1024 blue (row-major 32x32 planes)."""
    return np.stack([np.repeat(np.array(c, dtype=np.uint8), 1024) for c in colours])


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    d = tmp_path / "cifar-10-batches-py"
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    write_py2_pickle(d / "batches.meta", {"label_names": names, "num_cases_per_batch": 10, "num_vis": 3072})
    for b in range(1, 6):
        ys = [(b * 10 + i) % 10 for i in range(10)]
        write_py2_pickle(d / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5", "labels": ys,
                                                 "data": cifar_rows([(b, i, 250) for i in range(10)]),
                                                 "filenames": [f"img_{b}_{i}.png" for i in range(10)]})
    test = cifar_rows([(10, 20, 30), (40, 50, 60)])
    test[1, :1024] = np.arange(1024) % 256  # red plane of test image 1: pixel (row r, column c) = 32 r + c
    write_py2_pickle(d / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": [3, 1], "data": test,
                                        "filenames": ["t0.png", "t1.png"]})
    c100 = tmp_path / "cifar-100-python"
    fine = [f"class_{i}" for i in range(99)] + ["aquarium_fish"]
    write_py2_pickle(c100 / "meta", {"fine_label_names": fine, "coarse_label_names": [f"super_{i}" for i in range(20)]})
    write_py2_pickle(c100 / "train", {"batch_label": "training batch 1 of 1", "fine_labels": list(range(0, 100, 5)),
                                      "coarse_labels": [0] * 20, "data": cifar_rows([(i, i, i) for i in range(20)]),
                                      "filenames": [f"{i}.png" for i in range(20)]})
    write_py2_pickle(c100 / "test", {"batch_label": "testing batch 1 of 1", "fine_labels": [99], "coarse_labels": [1],
                                     "data": cifar_rows([(7, 7, 7)]), "filenames": ["x.png"]})
    return tmp_path


def test_cifar10(cifar_root: Path):
    t = load_task("cifar10", str(cifar_root))
    assert t.classnames[:3] == ["airplane", "automobile", "bird"] and t.template == "a photo of a {}."
    assert (len(t.train), len(t.val), len(t.test)) == (45, 5, 2) and DATASETS["cifar-10"].name == "cifar10"
    # batches are concatenated in order: training image 10*(b-1)+i has colour (b, i, 250) and label (10b+i) % 10
    im = np.asarray(t.reader("train/23"))
    assert im.shape == (32, 32, 3) and im[5, 7].tolist() == [3, 3, 250]
    assert {it.key: it.label for it in t.train + t.val}["train/23"] == 3
    im = np.asarray(t.reader("test/1"))
    assert im[0, 0].tolist() == [0, 50, 60] and im[5, 7].tolist() == [167, 50, 60] and labels(t.test) == [3, 1]


def test_cifar100_fine_labels(cifar_root: Path):
    t = load_task("cifar100", str(cifar_root))
    assert len(t.classnames) == 100 and t.classnames[99] == "aquarium fish"
    assert sorted(labels(t.train + t.val)) == list(range(0, 100, 5)) and labels(t.test) == [99]
    assert np.asarray(t.reader("train/4"))[0, 0].tolist() == [4, 4, 4]


class Boom:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_cifar_refuses_other_pickled_code(cifar_root: Path):
    d = cifar_root / "cifar-10-batches-py"
    (d / "test_batch").write_bytes(pickle.dumps({"labels": [0], "data": Boom()}, protocol=2))
    one_line_error(lambda: load_task("cifar10", str(cifar_root)), "test_batch", "refusing", "system")
    (d / "test_batch").write_bytes(b"\x80\x02}q\x00")  # truncated
    one_line_error(lambda: load_task("cifar10", str(cifar_root)), "test_batch", "not a CIFAR python batch")
    write_py2_pickle(d / "test_batch", {"labels": [0, 1], "data": cifar_rows([(1, 1, 1)])})
    one_line_error(lambda: load_task("cifar10", str(cifar_root)), "test_batch", "labels 0..9")
    os.remove(d / "data_batch_3")
    one_line_error(lambda: load_task("cifar10", str(cifar_root)), "data_batch_3", "not found")


# ------------------------------------------------------------------------------------------------------- WILDS


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


FMOW_ROWS = [  # split, category, country_code, timestamp -> expected split (None: not used)
    ("train", "airport", "USA", "2010-05-01T10:00:00Z", "train"),
    ("seq", "zoo", "USA", "2017-01-01T10:00:00Z", None),  # sequestered: left out, but it counts for image numbers
    ("train", "zoo", "FRA", "2012-12-31T23:59:59Z", "train"),
    ("train", "zoo", "FRA", "2014-02-01T00:00:00Z", None),  # a training row after 2013 is in no split
    ("val", "dam", "KEN", "2014-03-01T08:00:00.123Z", "val"),
    ("val", "dam", "KEN", "2011-03-01T08:00:00Z", None),  # in-distribution validation: not used
    ("val", "dam", "ATA", "2016-06-01T08:00:00Z", None),  # a val row from the test years is in no split
    ("test", "wind_farm", "ATA", "2016-01-01T00:00:00Z", "test"),  # ATA has no region: 'Other'
    ("test", "multi-unit_residential", "XXX", "2017-07-07T07:07:07Z", "test"),  # unknown country: 'Other'
    ("test", "airport", "USA", "2016-03-03T03:03:03Z", "test"),
    ("test", "airport", "FRA", "2015-12-31T23:00:00-02:00", "test"),  # 2016-01-01 01:00 UTC
    ("test", "dam", "KEN", "2015-12-31T23:00:00Z", None),  # in-distribution test
]


@pytest.fixture
def wilds_root(tmp_path: Path) -> Path:
    fmow = tmp_path / "fmow_v1.1"
    write_csv(fmow / "rgb_metadata.csv", ["split", "img_filename", "img_path", "category", "country_code", "timestamp", "region"],
              [[s, f"f{i}.jpg", f"p/{i}", c, cc, ts, "stale"] for i, (s, c, cc, ts, _) in enumerate(FMOW_ROWS)])
    write_csv(fmow / "country_code_mapping.csv", ["name", "alpha-2", "alpha-3", "region"],
              [["United States", "US", "USA", "Americas"], ["France", "FR", "FRA", "Europe"],
               ["Kenya", "KE", "KEN", "Africa"], ["Antarctica", "AQ", "ATA", ""]])
    png(fmow / "images" / "rgb_img_2.png", 40)
    cam = tmp_path / "camelyon17_v1.0"  # pandas' index column first, as WILDS writes it; patients zero-padded
    write_csv(cam / "metadata.csv", ["", "patient", "node", "x_coord", "y_coord", "tumor", "slide", "center", "split"],
              [[0, "004", 4, 3328, 21792, 1, 0, 0, 0], [1, "004", 4, 3200, 22272, 0, 0, 0, 1],
               [2, "020", 2, 640, 1280, 0, 10, 1, 0], [3, "040", 1, 96, 192, 1, 20, 2, 0],
               [4, "099", 0, 32, 64, 0, 49, 4, 0], [5, "041", 3, 10, 20, 1, 22, 2, 1]])
    png(cam / "patches" / "patient_004_node_4" / "patch_patient_004_node_4_x_3328_y_21792.png", 80)
    wc = tmp_path / "iwildcam_v2.0"
    write_csv(wc / "categories.csv", ["y", "category_id", "name"],
              [[0, 0, "empty"], [1, 3, "tayassu pecari"], [2, 7, "dasyprocta punctata"], [99999, 101, "unseen bird"]])
    write_csv(wc / "metadata.csv", ["", "split", "location_remapped", "location", "sequence_remapped", "seq_id", "y",
                                    "category_id", "datetime", "filename", "image_id"],
              [[0, "train", 0, 17, 0, "s0", 1, 3, "2013-01-01 00:00:00.000", "a.jpg", "i0"],
               [1, "train", 1, 23, 1, "s1", 0, 0, "2013-01-01 00:00:00.000", "b.jpg", "i1"],
               [2, "val", 2, 40, 2, "s2", 2, 7, "2013-01-01 00:00:00.000", "c.jpg", "i2"],
               [3, "id_val", 0, 17, 3, "s3", 1, 3, "2013-01-01 00:00:00.000", "d.jpg", "i3"],
               [4, "test", 3, 51, 4, "s4", 1, 3, "2013-01-01 00:00:00.000", "e.jpg", "i4"],
               [5, "id_test", 1, 23, 5, "s5", 0, 0, "2013-01-01 00:00:00.000", "f.jpg", "i5"]])
    png(wc / "train" / "a.jpg", 120)
    return tmp_path


def test_fmow_official_splits_and_regions(wilds_root: Path):
    t = load_task("fmow", str(wilds_root))
    assert len(t.classnames) == 62 and t.classnames[30] == "multi-unit residential" and t.metrics == ("accuracy", "worst_region_accuracy")
    by_split = {s: keys(getattr(t, s)) for s in ("train", "val", "test")}
    expected = {s: [f"images/rgb_img_{i}.png" for i, r in enumerate(FMOW_ROWS) if r[4] == s] for s in by_split}
    assert by_split == expected
    assert labels(t.train) == [0, 61] and t.train[1].classname == "zoo"
    assert [t.groups[k] for k in by_split["test"]] == ["Other", "Other", "Americas", "Europe"]
    assert t.groups[by_split["val"][0]] == "Africa" and set(t.groups) == {k for ks in by_split.values() for k in ks}
    assert np.asarray(t.reader("images/rgb_img_2.png"))[0, 0].tolist() == [40, 215, 9]


def test_camelyon17_hospitals(wilds_root: Path):
    t = load_task("camelyon17", str(wilds_root))
    assert t.classnames == ["lymph node", "lymph node containing metastatic tumor tissue"] and t.metrics == ("accuracy",)
    assert keys(t.train) == ["patches/patient_004_node_4/patch_patient_004_node_4_x_3328_y_21792.png",
                             "patches/patient_099_node_0/patch_patient_099_node_0_x_32_y_64.png"]
    assert labels(t.train) == [1, 0] and labels(t.val) == [0] and labels(t.test) == [1, 1]
    assert [t.groups[k] for k in keys(t.test)] == ["hospital 2", "hospital 2"] and t.groups[keys(t.val)[0]] == "hospital 1"
    assert np.asarray(t.reader(t.train[0].key))[0, 0].tolist() == [80, 175, 9]


def test_iwildcam_ood_splits_and_names(wilds_root: Path):
    t = load_task("iwildcam", str(wilds_root))
    assert t.classnames == ["empty", "tayassu pecari", "dasyprocta punctata"] and t.metrics == ("macro_f1", "accuracy")
    assert keys(t.train) == ["train/a.jpg", "train/b.jpg"] and keys(t.val) == ["train/c.jpg"] and keys(t.test) == ["train/e.jpg"]
    assert labels(t.train) == [1, 0] and t.groups["train/e.jpg"] == "location 3"
    assert np.asarray(t.reader("train/a.jpg"))[0, 0].tolist() == [120, 135, 9]


def test_groups_survive_sampling_and_subsets(wilds_root: Path):
    t = load_task("fmow", str(wilds_root))
    f = fewshot(t, 1, seed=1)
    assert f.groups is t.groups and f.metrics == t.metrics
    b = subsample_classes(t, "base")
    assert b.metrics == t.metrics and all(it.key in b.groups for it in b.train + b.test)


def test_wilds_errors(wilds_root: Path):
    meta = wilds_root / "fmow_v1.1" / "rgb_metadata.csv"
    meta.write_text(meta.read_text().replace("2010-05-01T10:00:00Z", "May 2010"))
    one_line_error(lambda: load_task("fmow", str(wilds_root)), str(meta), "row 2", "'May 2010' is not an ISO date")
    os.remove(wilds_root / "fmow_v1.1" / "country_code_mapping.csv")
    one_line_error(lambda: load_task("fmow", str(wilds_root)), "country_code_mapping.csv", "not found", "WILDS")
    meta = wilds_root / "camelyon17_v1.0" / "metadata.csv"
    meta.write_text(meta.read_text().replace("center", "hospital"))
    one_line_error(lambda: load_task("camelyon17", str(wilds_root)), str(meta), "'center'")
    meta = wilds_root / "iwildcam_v2.0" / "metadata.csv"
    meta.write_text(meta.read_text().replace(",1,3,2013", ",one,3,2013", 1))
    one_line_error(lambda: load_task("iwildcam", str(wilds_root)), str(meta), "row 2", "'one' is not an integer")
    one_line_error(lambda: load_task("iwildcam", None), "--root")


# -------------------------------------------------------------------------------------------- episodic sets


MINI = {"train": ["n01532829", "n01558993"], "val": ["n01855672"], "test": ["n02219486", "n01930112"]}


@pytest.fixture
def mini_root(tmp_path: Path) -> Path:
    d = tmp_path / "mini_imagenet"
    for s, wnids in MINI.items():
        rows = [[f"{w}{i:08d}.jpg", w] for w in wnids for i in (1, 2, 3)]
        write_csv(d / f"{s}.csv", ["filename", "label"], rows)
        for f, _ in rows:
            png(d / "images" / f)
    return tmp_path


def test_mini_imagenet(mini_root: Path):
    t = load_task("mini_imagenet", str(mini_root))
    # every class in classnames: train classes, then val, then test, each sorted by WordNet id
    assert t.classnames == ["house finch", "American robin", "goose", "nematode", "ant"]
    assert t.split_labels("train") == [0, 1] and t.split_labels("val") == [2] and t.split_labels("test") == [3, 4]
    assert keys(t.test)[:4] == ["images/n0221948600000001.jpg", "images/n0221948600000002.jpg",
                                "images/n0221948600000003.jpg", "images/n0193011200000001.jpg"]
    assert labels(t.test) == [4, 4, 4, 3, 3, 3] and t.test[0].classname == "ant"
    novel = keep_classes(t, t.split_labels("test"))
    assert novel.classnames == ["nematode", "ant"] and not novel.train and labels(novel.test) == [1, 1, 1, 0, 0, 0]
    assert t.reader(t.train[0].key).size == (8, 6)


def test_mini_imagenet_names_and_class_folders(mini_root: Path):
    assert len(MINI_IMAGENET_NAMES) == 100 and MINI_IMAGENET_NAMES["n02089867"] == "Treeing Walker Coonhound"
    d = mini_root / "mini_imagenet" / "images"
    for f in sorted(d.iterdir()):  # the images/<wnid>/<file> layout
        (d / f.name[:9]).mkdir(exist_ok=True)
        f.rename(d / f.name[:9] / f.name)
    t = load_task("miniimagenet", str(mini_root))
    assert t.val[0].key == "images/n01855672/n0185567200000001.jpg" and t.reader(t.val[0].key).size == (8, 6)


def test_mini_imagenet_errors(mini_root: Path):
    d = mini_root / "mini_imagenet"
    (d / "val.csv").write_text("filename,label\nx.jpg,n01532829\n")
    one_line_error(lambda: load_task("mini_imagenet", str(mini_root)), "n01532829", "train.csv and val.csv", "disjoint")
    (d / "val.csv").write_text("filename,label\nx.jpg,n99999999\n")
    one_line_error(lambda: load_task("mini_imagenet", str(mini_root)), str(d / "val.csv"), "row 2", "n99999999")
    (d / "val.csv").write_text("file,wnid\n")
    one_line_error(lambda: load_task("mini_imagenet", str(mini_root)), str(d / "val.csv"), "'filename', 'label'")
    (d / "val.csv").write_text("filename,label\n")
    os.remove(d / "test.csv")
    one_line_error(lambda: load_task("mini_imagenet", str(mini_root)), str(d / "test.csv"), "not found")


@pytest.fixture
def cub_root(tmp_path: Path) -> Path:
    d = tmp_path / "CUB_200_2011"
    d.mkdir()
    folders = {c: f"{c:03d}.Bird_{c}" for c in range(1, 201)}
    folders[1], folders[3], folders[10] = "001.Black_footed_Albatross", "003.Sooty_Albatross", "010.Red_winged_Blackbird"
    (d / "classes.txt").write_text("".join(f"{c} {f}\n" for c, f in folders.items()))
    images = [(1, 3), (2, 1), (3, 10), (4, 3), (5, 200)]  # (image id, class id): train, val, test, train, val
    (d / "images.txt").write_text("".join(f"{i} {folders[c]}/{folders[c][4:]}_{i}.jpg\n" for i, c in images))
    (d / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, c in images))
    for i, c in images:
        png(d / "images" / folders[c] / f"{folders[c][4:]}_{i}.jpg", i)
    return tmp_path


def test_cub_class_split(cub_root: Path):
    # the split: 100 / 50 / 50 disjoint classes covering 1..200
    assert [len(CUB_SPLIT[s]) for s in ("train", "val", "test")] == [100, 50, 50]
    assert sorted(c for s in CUB_SPLIT.values() for c in s) == list(range(1, 201))
    t = load_task("cub", str(cub_root))
    assert len(t.classnames) == 200 and t.template == "a photo of a {}, a type of bird."
    assert t.classnames[0] == "Sooty Albatross"  # class 3 is the first training class
    assert t.classnames[100] == "Black footed Albatross" and t.classnames[150] == "Red winged Blackbird"
    assert keys(t.train) == ["images/003.Sooty_Albatross/Sooty_Albatross_1.jpg", "images/003.Sooty_Albatross/Sooty_Albatross_4.jpg"]
    assert labels(t.train) == [0, 0] and labels(t.val) == [100, 149] and labels(t.test) == [150]
    assert t.split_labels("val") == [100, 149] and np.asarray(t.reader(t.test[0].key))[0, 0].tolist() == [3, 252, 9]


def test_cub_errors(cub_root: Path):
    d = cub_root / "CUB_200_2011"
    (d / "image_class_labels.txt").write_text("1 3\n2 201\n")
    one_line_error(lambda: load_task("cub", str(cub_root)), "image_class_labels.txt", "line 2", "201")
    (d / "image_class_labels.txt").write_text("1 3\n9\n")
    one_line_error(lambda: load_task("cub", str(cub_root)), "image_class_labels.txt", "line 2", "'<image id> <class id>'")
    (d / "classes.txt").write_text("1 001.Black_footed_Albatross\n")
    one_line_error(lambda: load_task("cub", str(cub_root)), "classes.txt", "200 classes")
    os.remove(d / "images.txt")
    (d / "classes.txt").write_text("".join(f"{c} {c:03d}.B\n" for c in range(1, 201)))
    one_line_error(lambda: load_task("cub", str(cub_root)), str(d / "images.txt"), "not found")


def test_split_labels_rejects_unknown_split(cub_root: Path):
    one_line_error(lambda: load_task("cub", str(cub_root)).split_labels("novel"), "'novel'")


# ----------------------------------------------------- the LayerNorm paper's own splits of CoOp's datasets (Table 5)


@pytest.fixture
def ln_root(tmp_path: Path) -> Path:
    """Food-101's meta files, DTD's labels/, Flowers102's .mat files and EuroSAT's folders, tiny."""
    food = tmp_path / "food-101"
    (food / "meta").mkdir(parents=True)
    (food / "meta" / "classes.txt").write_text("apple_pie\nbaby_back_ribs\n")
    train = [f"{c}/{c[0]}{i}" for c in ("apple_pie", "baby_back_ribs") for i in range(10)]
    (food / "meta" / "train.txt").write_text("\n".join(train) + "\n")
    (food / "meta" / "test.txt").write_text("apple_pie/t1\nbaby_back_ribs/t2\n")
    dtd = tmp_path / "dtd"
    (dtd / "labels").mkdir(parents=True)
    for split in ("train", "val", "test"):
        (dtd / "labels" / f"{split}1.txt").write_text(f"banded/banded_{split}.jpg\nzigzagged/zigzagged_{split}.jpg\n")
        (dtd / "labels" / f"{split}2.txt").write_text("banded/other.jpg\n")  # another of DTD's ten splits
        for c in ("banded", "zigzagged"):
            png(dtd / "images" / c / f"{c}_{split}.jpg")
    import scipy.io

    fl = tmp_path / "oxford_flowers"
    fl.mkdir()
    labels = [1] * 12 + [2] * 12  # images 1..24; per class 5 train + 5 val + 2 test
    scipy.io.savemat(fl / "imagelabels.mat", {"labels": np.array([labels])})
    scipy.io.savemat(fl / "setid.mat", {"trnid": np.array([[*range(1, 6), *range(13, 18)]]),
                                         "valid": np.array([[*range(6, 11), *range(18, 23)]]),
                                         "tstid": np.array([[23, 11, 24, 12]])})
    (fl / "cat_to_name.json").write_text('{"1": "pink primrose", "2": "hard-leaved pocket orchid"}')
    for i in range(1, 25):
        png(fl / "jpg" / f"image_{i:05d}.jpg")
    for c, n in (("Forest", 14), ("River", 13)):  # 27 images: 10 test, 2 val, 15 train
        for i in range(n):
            png(tmp_path / "eurosat" / "2750" / c / f"{c}_{i}.jpg")
    return tmp_path


def test_food101_official_split_with_a_fifth_of_train_held_out(ln_root: Path):
    t = load_task("food101_ln", str(ln_root))
    assert t.classnames == ["apple pie", "baby back ribs"] and t.template == "a photo of {}, a type of food."
    assert (len(t.train), len(t.val), len(t.test)) == (16, 4, 2)  # 10 per class: 2 held out, as 150 of 750
    assert sorted(labels(t.val)) == [0, 0, 1, 1] and keys(t.test) == ["images/apple_pie/t1.jpg", "images/baby_back_ribs/t2.jpg"]
    assert set(keys(t.train)).isdisjoint(keys(t.val)) and len(set(keys(t.train + t.val))) == 20
    assert load_task("food_ln", str(ln_root)).val == t.val  # the same images every time


def test_dtd_official_split_1(ln_root: Path):
    t = load_task("dtd_ln", str(ln_root))
    assert t.classnames == ["banded", "zigzagged"] and t.template == "{} texture."
    assert keys(t.val) == ["images/banded/banded_val.jpg", "images/zigzagged/zigzagged_val.jpg"] and labels(t.test) == [0, 1]


def test_flowers_official_setid_pooled_and_held_out(ln_root: Path):
    t = load_task("oxford_flowers_ln", str(ln_root))
    assert t.classnames == ["pink primrose", "hard-leaved pocket orchid"]
    assert (len(t.train), len(t.val), len(t.test)) == (16, 4, 4)  # 10 pooled per class: 8 / 2, as 16 / 4 of 20
    assert keys(t.test) == [f"jpg/image_{i:05d}.jpg" for i in (11, 12, 23, 24)] and labels(t.test) == [0, 0, 1, 1]
    assert not {11, 12, 23, 24} & {int(k[10:15]) for k in keys(t.train + t.val)}
    assert t.reader(t.val[0].key).size == (8, 6)


def test_eurosat_shuffled_into_the_papers_proportions(ln_root: Path):
    t = load_task("eurosat_ln", str(ln_root))
    assert t.classnames == ["Forest", "River"] and t.template == "a centered satellite photo of {}."
    assert (len(t.train), len(t.val), len(t.test)) == (15, 2, 10)  # 27,000 -> 15,000 / 2,000 / 10,000
    assert len(set(keys(t.train + t.val + t.test))) == 27 and load_task("eurosat_ln", str(ln_root)).test == t.test


def test_the_regimes_run_the_papers_splits_with_the_rules_of_each_dataset():
    from clipfit.data.catalogue import expand_datasets, rules_dataset
    from clipfit.data.sources import SOURCES
    from clipfit.protocols.regimes import regime_shots
    from clipfit.recipes import Context, validation_shots

    suite = expand_datasets("layernorm10")
    assert {"eurosat_ln", "oxford_flowers_ln", "dtd_ln", "food101_ln"} <= set(suite) and "food101" not in suite
    assert rules_dataset("flowers_ln") == "oxford_flowers" and rules_dataset("dtd") == "dtd"
    assert validation_shots(Context("regimes", rules_dataset("oxford_flowers_ln"), 16)) == 4  # Flowers: min(K, 4)
    per_class = {d: SOURCES[d].sizes[0] // SOURCES[d].classes for d in ("food101_ln", "dtd_ln", "oxford_flowers_ln")}
    high = {d: [k for k in regime_shots(d, "high", None, None) if k <= n] for d, n in per_class.items()}
    # the paper's text: DTD and Flowers sit out the high-data regime, Food-101 takes part (600 per class)
    assert high == {"food101_ln": [256, 512], "dtd_ln": [], "oxford_flowers_ln": []}


# ----------------------------------------------------------------------------------------------------- metrics


def test_accuracy_from_logits_or_predictions():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y = torch.tensor([1, 0, 0, 0])
    assert metrics.compute("accuracy", logits, y) == pytest.approx(75.0)
    assert metrics.compute("accuracy", [1, 0, 1, 0], [1, 0, 0, 0]) == pytest.approx(75.0)
    assert np.isnan(metrics.compute("accuracy", [], []))


def test_macro_f1_as_wilds_averages_it():
    # true classes {0, 1, 2}; class 2 is never predicted (F1 0), class 3 is predicted but never true (not averaged)
    y = [0, 0, 1, 1, 2, 2]
    pred = [0, 1, 1, 1, 3, 0]
    # class 0: tp 1, fp 1, fn 1 -> F1 1/2; class 1: tp 2, fp 1, fn 0 -> F1 4/5; class 2: F1 0
    assert metrics.compute("macro_f1", pred, y) == pytest.approx(100 * (0.5 + 0.8 + 0.0) / 3)
    logits = torch.nn.functional.one_hot(torch.tensor(pred), 4).float()
    assert metrics.compute("macro_f1", logits, torch.tensor(y)) == pytest.approx(100 * 1.3 / 3)


def test_worst_region_leaves_out_other():
    y = [0, 0, 0, 0, 0, 0, 0]
    pred = [0, 0, 1, 0, 1, 1, 1]
    regions = ["Europe", "Europe", "Asia", "Asia", "Other", "Other", "Africa"]
    # Europe 100%, Asia 50%, Africa 0%, Other 0% (not counted)
    assert metrics.compute("worst_region_accuracy", pred, y, regions) == pytest.approx(0.0)
    regions[6] = "Asia"  # Asia 1/3
    assert metrics.compute("worst_region_accuracy", pred, y, regions) == pytest.approx(100 / 3)
    assert metrics.compute("worst_group_accuracy", pred, y, regions) == pytest.approx(0.0)  # 'Other' counts here


def test_metric_errors():
    one_line_error(lambda: metrics.compute("top5", [0], [0]), "top5", "macro_f1")
    one_line_error(lambda: metrics.compute("worst_region_accuracy", [0], [0]), "group")
    one_line_error(lambda: metrics.compute("accuracy", [0, 1], [0]), "2 predictions for 1 labels")


def test_evaluate_reports_the_task_metrics(wilds_root: Path, monkeypatch):
    t = load_task("fmow", str(wilds_root))
    items = t.test  # regions Other, Other, Americas, Europe; labels 60, 30, 0, 0
    logits = torch.nn.functional.one_hot(torch.tensor([60, 0, 0, 5]), 62).float()
    monkeypatch.setattr(loop, "eval_loader", lambda *a, **k: None)
    monkeypatch.setattr(loop, "predict", lambda *a, **k: (logits, torch.tensor(labels(items))))
    r = loop.evaluate(None, t, items, TrainConfig(), torch.device("cpu"))
    # right, wrong (Other), right (Americas), wrong (Europe): accuracy 50, worst region (Europe) 0
    assert r == {"accuracy": pytest.approx(50.0), "n": 4, "worst_region_accuracy": pytest.approx(0.0)}
    w = load_task("iwildcam", str(wilds_root))  # train items: labels 1, 0; predicted 1, 1
    monkeypatch.setattr(loop, "predict", lambda *a, **k: (torch.tensor([[0.0, 1.0, 0.0]] * 2), torch.tensor([1, 0])))
    r = loop.evaluate(None, w, w.train, TrainConfig(), torch.device("cpu"))
    assert r == {"accuracy": pytest.approx(50.0), "n": 2, "macro_f1": pytest.approx(100 * (0 + 2 / 3) / 2)}

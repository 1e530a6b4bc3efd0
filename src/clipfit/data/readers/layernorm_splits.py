"""EuroSAT, DTD, Flowers102 and Food-101 on the splits of "How to Adapt Your Large-Scale Vision-and-Language Model"
(LayerNorm tuning, its Table 5), which differ from CoOp's: the same folders, images, class names and templates as
`eurosat`, `dtd`, `oxford_flowers` and `food101`, another split. Its regimes (`layernorm10`) use these; the recipe
rules of each follow the dataset it splits (`rules_as`: Flowers keeps its min(K, 4) validation images).

- `food101_ln` (60,600 / 15,150 / 25,250): the official meta/train.txt and meta/test.txt; validation = 150 of each
  class's 750 training images. With 600 training images per class it takes part in the high-data regime (256 and
  512 shots), as the paper's text says.
- `dtd_ln` (1,880 / 1,880 / 1,880): DTD's official split 1, labels/train1.txt, val1.txt, test1.txt.
- `oxford_flowers_ln` (1,632 / 408 / 6,149): the official setid.mat; its train and validation images (20 per class)
  pooled, 4 of each class's 20 held out for validation; test = the official test set. Labels: imagelabels.mat;
  class names: cat_to_name.json. Reading the .mat files needs scipy.
- `eurosat_ln` (15,000 / 2,000 / 10,000): EuroSAT ships no split; its n = 27,000 images, sorted by path, are
  shuffled with `random.Random("clipfit:eurosat_ln")`: the first round(10n/27) are test, the next round(2n/27)
  validation, the rest train (not stratified by class). Class names: CoOp's for the folders.

Held-out validation within a class (Food-101, Flowers): `folder.split_class` with a fifth for validation, seeded
with "<name>:<class folder or label>". The paper gives the sizes only; these rules are ours and give its sizes.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from ...errors import ClipfitError, require
from ..dataset_registry import register_dataset
from ..images import FileReader
from ..sources import dataset_folder
from ..types import Item, Task
from .coop_layout import SPLIT_SETS
from .image_folder import class_folders, display_name, list_images, split_class

EUROSAT_NAMES = {  # CoOp's class names for EuroSAT's folders (its datasets/eurosat.py)
    "AnnualCrop": "Annual Crop Land", "Forest": "Forest", "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road", "Industrial": "Industrial Buildings", "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land", "Residential": "Residential Buildings", "River": "River",
    "SeaLake": "Sea or Lake",
}
EUROSAT_SIZES = (15_000, 2_000, 10_000)  # train, val, test of EuroSAT's 27,000 images (the paper's Table 5)
HELD_OUT = 0.2  # Food-101 and Flowers: a fifth of each class's training images is validation
TEMPLATES = {s.name: s.template for s in SPLIT_SETS}


def _task(name: str, classnames: list[str], base: Path, template: str, splits: dict[str, list[tuple[str, int]]]) -> Task:
    items = {s: [Item(k, y, classnames[y]) for k, y in rows] for s, rows in splits.items()}
    return Task(name=name, classnames=classnames, template=template, reader=FileReader(base), **items)


def _hold_out(by_class: dict[int, list[str]], seed: str) -> dict[str, list[tuple[str, int]]]:
    """(train, val) of each class's keys, a fifth held out for validation by `folder.split_class`."""
    out: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
    for y, keys in sorted(by_class.items()):
        train, val, _ = split_class(keys, f"{seed}:{y}", p_val=HELD_OUT, p_test=0.0)
        out["train"] += [(k, y) for k in train]
        out["val"] += [(k, y) for k in val]
    return out


def _lines(path: Path, what: str) -> list[str]:
    try:
        return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except FileNotFoundError:
        raise ClipfitError(f"{path} not found ({what}; it comes with the dataset's archive)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ClipfitError(f"cannot read {path}: {e}") from None


@register_dataset("food101_ln", aliases=("food_ln",), rules_as="food101", template=TEMPLATES["food101"],
                  help="Food-101 on the official split, 150 validation images per class held out of train "
                       "(the LayerNorm-tuning paper's Table 5: 60,600 / 15,150 / 25,250)")
def build_food101_ln(root: str | None) -> Task:
    base = dataset_folder(root, "food101_ln")
    folders = [ln.strip() for ln in _lines(base / "meta" / "classes.txt", "Food-101's class list")]
    label = {f: y for y, f in enumerate(folders)}
    splits: dict[str, list[str]] = {}
    for split in ("train", "test"):
        path = base / "meta" / f"{split}.txt"
        splits[split] = [ln.strip() for ln in _lines(path, f"Food-101's official {split} list")]
        bad = next((k for k in splits[split] if k.split("/")[0] not in label), None)
        if bad:
            raise ClipfitError(f"{path}: {bad!r} names no class of {base / 'meta' / 'classes.txt'}")
    by_class: dict[int, list[str]] = {}
    for k in splits["train"]:
        by_class.setdefault(label[k.split("/")[0]], []).append(f"images/{k}.jpg")
    parts = _hold_out(by_class, "food101_ln")
    parts["test"] = [(f"images/{k}.jpg", label[k.split("/")[0]]) for k in splits["test"]]
    return _task("food101_ln", [display_name(f) for f in folders], base, TEMPLATES["food101"], parts)


@register_dataset("dtd_ln", aliases=("textures_ln",), rules_as="dtd", template=TEMPLATES["dtd"],
                  help="DTD on its official split 1 (labels/*1.txt; the LayerNorm-tuning paper's Table 5: 1,880 each)")
def build_dtd_ln(root: str | None) -> Task:
    base = dataset_folder(root, "dtd_ln")
    folders = class_folders(base / "images") if (base / "images").is_dir() else []
    if not folders:
        raise ClipfitError(f"no class folders in {base / 'images'} (DTD's images/<class>/ folders)")
    label = {f: y for y, f in enumerate(folders)}
    parts = {}
    for split in ("train", "val", "test"):
        path = base / "labels" / f"{split}1.txt"
        keys = [ln.strip() for ln in _lines(path, f"DTD's official {split} list of split 1")]
        bad = next((k for k in keys if k.split("/")[0] not in label), None)
        if bad:
            raise ClipfitError(f"{path}: {bad!r} is in no class folder of {base / 'images'}")
        parts[split] = [(f"images/{k}", label[k.split("/")[0]]) for k in keys]
    return _task("dtd_ln", [display_name(f) for f in folders], base, TEMPLATES["dtd"], parts)


def _mat(path: Path, key: str):
    """One variable of a MATLAB file, flattened, as ints."""
    io = require("scipy.io", f"reading {path.name}", "scipy")
    try:
        return [int(x) for x in io.loadmat(path)[key].ravel()]
    except FileNotFoundError:
        raise ClipfitError(f"{path} not found (Flowers102's {path.name}: https://www.robots.ox.ac.uk/~vgg/data/flowers/102/)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ClipfitError(f"cannot read {key!r} from {path}: {e}") from None


@register_dataset("oxford_flowers_ln", aliases=("flowers_ln",), rules_as="oxford_flowers",
                  template=TEMPLATES["oxford_flowers"],
                  help="Flowers102 on the official setid.mat, train and val pooled, 4 per class held out (the "
                       "LayerNorm-tuning paper's Table 5: 1,632 / 408 / 6,149)")
def build_oxford_flowers_ln(root: str | None) -> Task:
    base = dataset_folder(root, "oxford_flowers_ln")
    labels = _mat(base / "imagelabels.mat", "labels")  # image i (1-based) has class labels[i - 1] (1-based)
    names_path = base / "cat_to_name.json"
    try:
        names = json.loads(names_path.read_text(encoding="utf-8"))
        classnames = [str(names[str(y)]).replace("_", " ") for y in range(1, max(labels) + 1)]
    except FileNotFoundError:
        raise ClipfitError(f"{names_path} not found (CoOp's cat_to_name.json)") from None
    except (OSError, ValueError, KeyError) as e:
        raise ClipfitError(f"{names_path} does not name Flowers102's classes 1..{max(labels)}: {e}") from None

    def key_label(i: int) -> tuple[str, int]:
        if not 1 <= i <= len(labels):
            raise ClipfitError(f"{base / 'setid.mat'} names image {i}; imagelabels.mat has {len(labels)}")
        return f"jpg/image_{i:05d}.jpg", labels[i - 1] - 1

    by_class: dict[int, list[str]] = {}
    for i in _mat(base / "setid.mat", "trnid") + _mat(base / "setid.mat", "valid"):
        k, y = key_label(i)
        by_class.setdefault(y, []).append(k)
    parts = _hold_out(by_class, "oxford_flowers_ln")
    parts["test"] = [key_label(i) for i in sorted(_mat(base / "setid.mat", "tstid"))]
    return _task("oxford_flowers_ln", classnames, base, TEMPLATES["oxford_flowers"], parts)


@register_dataset("eurosat_ln", rules_as="eurosat", template=TEMPLATES["eurosat"],
                  help="EuroSAT split 15,000 / 2,000 / 10,000 as the LayerNorm-tuning paper's Table 5 (a fixed shuffle)")
def build_eurosat_ln(root: str | None) -> Task:
    base = dataset_folder(root, "eurosat_ln")
    image_dir = base / "2750"
    folders = class_folders(image_dir) if image_dir.is_dir() else []
    unknown = [f for f in folders if f not in EUROSAT_NAMES]
    if not folders or unknown:
        raise ClipfitError(f"{image_dir} must hold EuroSAT's 10 class folders ({', '.join(EUROSAT_NAMES)})"
                           + (f"; found {unknown[0]!r}" if unknown else ""))
    label = {f: y for y, f in enumerate(folders)}
    order = [(p.relative_to(base).as_posix(), label[f]) for f in folders for p in list_images(image_dir / f)]
    random.Random("clipfit:eurosat_ln").shuffle(order)
    n, total = len(order), sum(EUROSAT_SIZES)
    n_test, n_val = round(n * EUROSAT_SIZES[2] / total), round(n * EUROSAT_SIZES[1] / total)
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    parts = {s: sorted(v) for s, v in (("train", train), ("val", val), ("test", test))}
    return _task("eurosat_ln", [EUROSAT_NAMES[f] for f in folders], base, TEMPLATES["eurosat"], parts)


"""Where every dataset read from `--root` comes from, as data: the folder it needs under `--root`, what that folder
holds, what to fetch from where (official sources; CoOp's split files as CoOp's DATASETS.md links them,
https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md), the split it is read with, and its published sizes.

One table (`SOURCES`) serves the readers (their folder, and the one wording of a missing folder: `missing_folder`),
`clipfit datasets check` (what to do about a missing or incomplete dataset), the dry runs (the sizes of a dataset
that is not there yet) and docs/datasets.md (`markdown`, written by `python scripts/datasets_doc.py`).
Sizes: classes and train / val / test images as the dataset's split gives them (CoOp's split files, as CLIPFit's
Table 8 lists them; the LayerNorm-tuning paper's Table 5; WILDS' official splits; ImageNet-A, -R, -Sketch and -V2
as published).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ClipfitError

COOP_MD = "https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md"
DRIVE = "https://drive.google.com/file/d/{}/view"
WILDS_GET = "pip install wilds; python -c \"import wilds; wilds.get_dataset('{}', download=True, root_dir='ROOT')\""


@dataclass(frozen=True)
class Fetch:
    """One thing to download: what it is, and its address."""

    what: str
    url: str


@dataclass(frozen=True)
class Source:
    name: str  # catalogue name
    folder: str  # under --root
    layout: str  # what the folder holds
    fetch: tuple[Fetch, ...]  # what to download, from where
    split: str  # which split the reader uses, and where its file comes from
    classes: int
    sizes: tuple[int, int, int]  # train, val, test images



def _coop(name: str, folder: str, layout: str, what: str, url: str, split_file: str, drive: str, classes: int,
          sizes: tuple[int, int, int]) -> Source:
    return Source(name, folder, f"{layout}, {split_file}", (Fetch(what, url), Fetch(split_file, DRIVE.format(drive))),
                  f"CoOp's {split_file}", classes, sizes)


_FLOWERS = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
_IMAGENET = Fetch("ImageNet ILSVRC-2012 (train and validation images)", "https://image-net.org/index.php")
_CLASSNAMES = Fetch("classnames.txt (CoOp's, CLIP's class names)", DRIVE.format("1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF"))
_VARIANT_NAMES = "classnames.txt (a copy of imagenet/classnames.txt; else that one is read)"

SOURCES: dict[str, Source] = {s.name: s for s in [
    # CoOp's benchmark (CLIPFit, LLU): CoOp's split files
    Source("imagenet", "imagenet", "images/train/<wnid>/, images/val/<wnid>/, classnames.txt", (_IMAGENET, _CLASSNAMES),
           "the official train set; test = the official validation set", 1000, (1_281_167, 0, 50_000)),
    _coop("caltech101", "caltech-101", "101_ObjectCategories/", "Caltech101 101_ObjectCategories.tar.gz",
          "http://www.vision.caltech.edu/Image_Datasets/Caltech101/101_ObjectCategories.tar.gz",
          "split_zhou_Caltech101.json", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN", 100, (4128, 1649, 2465)),
    _coop("oxford_pets", "oxford_pets", "images/", "Oxford-IIIT Pet images.tar.gz",
          "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz", "split_zhou_OxfordPets.json",
          "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs", 37, (2944, 736, 3669)),
    _coop("stanford_cars", "stanford_cars", "cars_train/, cars_test/", "Stanford Cars cars_train.tgz and cars_test.tgz",
          "http://ai.stanford.edu/~jkrause/car196/", "split_zhou_StanfordCars.json", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT",
          196, (6509, 1635, 8041)),
    _coop("oxford_flowers", "oxford_flowers", "jpg/", "Oxford Flowers102 102flowers.tgz", _FLOWERS + "102flowers.tgz",
          "split_zhou_OxfordFlowers.json", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT", 102, (4093, 1633, 2463)),
    _coop("food101", "food-101", "images/", "Food-101 food-101.tar.gz",
          "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/", "split_zhou_Food101.json",
          "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl", 101, (50500, 20200, 30300)),
    Source("fgvc_aircraft", "fgvc_aircraft", "images/, variants.txt, images_variant_{train,val,test}.txt (the "
           "archive's data/ folder, renamed)", (Fetch("FGVC-Aircraft fgvc-aircraft-2013b.tar.gz",
                                                      "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/"
                                                      "fgvc-aircraft-2013b.tar.gz"),),
           "the official images_variant_{train,val,test}.txt of the archive", 100, (3334, 3333, 3333)),
    _coop("sun397", "sun397", "SUN397/", "SUN397 SUN397.tar.gz", "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
          "split_zhou_SUN397.json", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq", 397, (15880, 3970, 19850)),
    _coop("dtd", "dtd", "images/", "DTD dtd-r1.0.1.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
          "split_zhou_DescribableTextures.json", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x", 47, (2820, 1128, 1692)),
    _coop("eurosat", "eurosat", "2750/", "EuroSAT (RGB) EuroSAT.zip", "http://madm.dfki.de/files/sentinel/EuroSAT.zip",
          "split_zhou_EuroSAT.json", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o", 10, (13500, 5400, 8100)),
    _coop("ucf101", "ucf101", "UCF-101-midframes/", "UCF101 middle frames, CoOp's UCF-101-midframes.zip",
          DRIVE.format("10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O"), "split_zhou_UCF101.json", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y",
          101, (7639, 1898, 3783)),
    # ImageNet's shifted test sets (test only)
    Source("imagenetv2", "imagenetv2", "imagenetv2-matched-frequency-format-val/<0..999>/, " + _VARIANT_NAMES,
           (Fetch("ImageNetV2 matched-frequency", "https://s3-us-west-2.amazonaws.com/imagenetv2public/"
                                                  "imagenetv2-matched-frequency.tar.gz"), _CLASSNAMES),
           "test only (the whole set)", 1000, (0, 0, 10_000)),
    Source("imagenet_sketch", "imagenet-sketch", "images/<wnid>/, " + _VARIANT_NAMES,
           (Fetch("ImageNet-Sketch", "https://github.com/HaohanWang/ImageNet-Sketch"), _CLASSNAMES),
           "test only (the whole set)", 1000, (0, 0, 50_889)),
    Source("imagenet_a", "imagenet-adversarial", "imagenet-a/<wnid>/ (200 classes), " + _VARIANT_NAMES,
           (Fetch("ImageNet-A", "https://github.com/hendrycks/natural-adv-examples"), _CLASSNAMES),
           "test only (the whole set)", 200, (0, 0, 7_500)),
    Source("imagenet_r", "imagenet-rendition", "imagenet-r/<wnid>/ (200 classes), " + _VARIANT_NAMES,
           (Fetch("ImageNet-R", "https://github.com/hendrycks/imagenet-r"), _CLASSNAMES),
           "test only (the whole set)", 200, (0, 0, 30_000)),
    # the LayerNorm-tuning paper's datasets (its Table 5)
    Source("mnist", "mnist", "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
           "t10k-labels-idx1-ubyte (each plain or .gz)", (Fetch("MNIST's four idx files", "http://yann.lecun.com/exdb/mnist/"),),
           "the official train / test; 2,000 validation images held out of train (clipfit's rule)", 10,
           (58_000, 2_000, 10_000)),
    Source("cifar10", "cifar-10-batches-py", "data_batch_1 .. data_batch_5, test_batch, batches.meta",
           (Fetch("CIFAR-10 python version, cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar.html"),),
           "the official train / test; 2,000 validation images held out of train (clipfit's rule)", 10,
           (48_000, 2_000, 10_000)),
    Source("cifar100", "cifar-100-python", "train, test, meta",
           (Fetch("CIFAR-100 python version, cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar.html"),),
           "the official train / test; 2,000 validation images held out of train (clipfit's rule)", 100,
           (48_000, 2_000, 10_000)),
    Source("eurosat_ln", "eurosat", "2750/<class>/", (Fetch("EuroSAT (RGB) EuroSAT.zip",
                                                            "http://madm.dfki.de/files/sentinel/EuroSAT.zip"),),
           "the LayerNorm-tuning paper's sizes (Table 5) by clipfit's rule: the 27,000 images shuffled with a fixed "
           "seed, 10,000 test, 2,000 validation, the rest train", 10, (15_000, 2_000, 10_000)),
    Source("dtd_ln", "dtd", "images/, labels/train1.txt, labels/val1.txt, labels/test1.txt",
           (Fetch("DTD dtd-r1.0.1.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"),),
           "DTD's official split 1 (labels/*1.txt, in the archive)", 47, (1880, 1880, 1880)),
    Source("oxford_flowers_ln", "oxford_flowers", "jpg/, imagelabels.mat, setid.mat, cat_to_name.json",
           (Fetch("Oxford Flowers102 102flowers.tgz, imagelabels.mat and setid.mat", _FLOWERS),
            Fetch("cat_to_name.json (CoOp's)", DRIVE.format("1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0"))),
           "the official setid.mat: train and val pooled, 4 of each class's 20 held out for validation (clipfit's "
           "rule, the LayerNorm-tuning paper's Table 5 sizes); test = the official test set (needs scipy)", 102,
           (1632, 408, 6149)),
    Source("food101_ln", "food-101", "images/, meta/classes.txt, meta/train.txt, meta/test.txt",
           (Fetch("Food-101 food-101.tar.gz", "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/"),),
           "the official meta/train.txt and meta/test.txt; 150 of each class's 750 training images held out for "
           "validation (clipfit's rule, the LayerNorm-tuning paper's Table 5 sizes)", 101, (60_600, 15_150, 25_250)),
    Source("fmow", "fmow_v1.1", "rgb_metadata.csv, country_code_mapping.csv, images/",
           (Fetch("WILDS FMoW v1.1", WILDS_GET.format("fmow")),), "WILDS' official out-of-distribution split", 62,
           (76_863, 19_915, 22_108)),
    Source("camelyon17", "camelyon17_v1.0", "metadata.csv, patches/",
           (Fetch("WILDS Camelyon17 v1.0", WILDS_GET.format("camelyon17")),),
           "WILDS' official out-of-distribution split", 2, (302_436, 34_904, 85_054)),
    Source("iwildcam", "iwildcam_v2.0", "metadata.csv, categories.csv, train/",
           (Fetch("WILDS iWildCam v2.0", WILDS_GET.format("iwildcam")),),
           "WILDS' official out-of-distribution split", 182, (129_809, 14_961, 42_791)),
    Source("mini_imagenet", "mini_imagenet", "train.csv, val.csv, test.csv, images/<filename> (or images/<wnid>/<filename>)",
           (Fetch("the ImageNet ILSVRC-2012 training images the csv files name", "https://image-net.org/index.php"),
            Fetch("Ravi & Larochelle's train.csv, val.csv, test.csv",
                  "https://github.com/twitter/meta-learning-lstm/tree/master/data/miniImagenet")),
           "Ravi & Larochelle's class split (64 / 16 / 20 classes)", 100, (38_400, 9_600, 12_000)),
    Source("cub", "CUB_200_2011", "images.txt, image_class_labels.txt, classes.txt, images/",
           (Fetch("CUB-200-2011 CUB_200_2011.tgz", "https://www.vision.caltech.edu/datasets/cub_200_2011/"),),
           "built in: the FEAT code base's class split (100 / 50 / 50 classes)", 200, (5_891, 2_932, 2_965)),
]}


def missing_folder(name: str, path: Path) -> ClipfitError:
    """The one error every reader gives for a dataset folder that is not there."""
    s = SOURCES[name]
    get = "; ".join(f"{f.what}: {f.url}" for f in s.fetch)
    return ClipfitError(f"dataset {name}: folder {path} not found (get {get}; `clipfit datasets check --root "
                        f"{path.parent} {name}` says what goes in it)")


def dataset_folder(root: str | None, name: str) -> Path:
    """root/<the dataset's folder>, which must exist; one-line errors for no root and for a missing folder."""
    folder = SOURCES[name].folder
    if not root:
        raise ClipfitError(f"dataset {name!r} is read from disk: pass --root DIR (the folder holding {folder}/)")
    r = Path(os.path.expanduser(root))
    if not r.is_dir():
        raise ClipfitError(f"--root {root} is not a folder")
    d = r / folder
    if not d.is_dir():
        raise missing_folder(name, d)
    return d


def _cell(x: str) -> str:
    return x.replace("|", "\\|")


def markdown() -> str:
    """docs/datasets.md's table of every dataset read from --root, from `SOURCES`."""
    lines = ["| name | under `--root` | get | split | classes | train / val / test |", "|---|---|---|---|---|---|"]
    for s in SOURCES.values():
        get = "; ".join(f"[{_cell(f.what)}]({f.url})" if f.url.startswith("http") else f"{_cell(f.what)}: `{f.url}`"
                        for f in s.fetch)
        sizes = " / ".join(f"{n:,}" for n in s.sizes)
        lines.append(f"| `{s.name}` | `{s.folder}/`: `{_cell(s.layout)}` | {get} | {_cell(s.split)} | {s.classes:,} | "
                     f"{sizes} |")
    return "\n".join(lines) + "\n"

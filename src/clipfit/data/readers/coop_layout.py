"""The CoOp benchmark catalogue, read from `--root` in the layout of CoOp's DATASETS.md: the 9 datasets with CoOp's
split files (`split_zhou_<Name>.json` beside the images), FGVC-Aircraft with its own split files, ImageNet's class
folders and its shifted test sets. The folder each needs under `--root`, what it holds and where to get it:
`sources.SOURCES` (docs/datasets.md lists them).

The ImageNet variants read classnames.txt from their own folder, as CoOp does, or else from root/imagenet/.

Differences from CoOp's loaders, all deliberate:
- Class names have '_' replaced by ' ' (CoOp does this when it builds prompts, e.g. UCF101's
  "Apply_Eye_Makeup"); labels and item order are the split file's.
- ImageNet: test = the official val set. CoOp also uses it as its validation set; we do not (that would be
  model selection on test): ImageNet has no validation split here, so training keeps the last epoch.
  Folders and image names are listed sorted (CoOp lists images in file-system order, which is not portable).
- ImageNet-V2's folder i is label i of the sorted ImageNet wnids (the standard class order).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from ...errors import ClipfitError
from ..dataset_registry import register_dataset
from ..images import FileReader
from ..sources import dataset_folder
from ..types import Item, Task
from .image_folder import IMAGE_EXTS

DATASETS_MD = "as CoOp's DATASETS.md says: https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md"
PHOTO = "a photo of a {}."


# ---------------------------------------------------------------------------------------------------------
# Split files (reusable for a user's own split file)


def check_relpath(path: str, where: str) -> str:
    """Reject absolute paths and '..' components in a split file (cheap build-time check); returns `path`."""
    if not isinstance(path, str) or not path:
        raise ClipfitError(f"{where}: image path must be a non-empty string, got {path!r}")
    posix, win = PurePosixPath(path), PureWindowsPath(path)
    if posix.is_absolute() or win.is_absolute() or win.drive or path.startswith(("/", "\\")):
        raise ClipfitError(f"{where}: image path {path!r} is absolute; split files hold paths relative to the image folder")
    if ".." in posix.parts or ".." in win.parts:
        raise ClipfitError(f"{where}: image path {path!r} contains '..'; split files may not point outside the image folder")
    return path


def classnames_from_items(items: list[Item], where: str) -> list[str]:
    """label -> class name from the items, sorted by label; labels must be 0..n-1 with one name each."""
    names: dict[int, str] = {}
    for it in items:
        if names.setdefault(it.label, it.classname) != it.classname:
            raise ClipfitError(f"{where}: label {it.label} has two class names, {names[it.label]!r} and {it.classname!r}")
    if not names:
        raise ClipfitError(f"{where}: no items")
    if sorted(names) != list(range(len(names))):
        n = len(names)
        bad = sorted(y for y in names if not 0 <= y < n)  # n labels, not 0..n-1: some label lies outside
        missing = sorted(set(range(n)) - set(names))
        raise ClipfitError(f"{where}: label {bad[0]} (class {names[bad[0]]!r}) is outside 0..{n - 1}; the {n} classes "
                           f"must be numbered 0..{n - 1} without gaps (missing: {', '.join(map(str, missing[:5]))}); "
                           "renumber them")
    return [names[y] for y in range(len(names))]


def read_split_file(split_file: str | os.PathLike, image_dir: str | os.PathLike, name: str | None = None,
                    template: str = PHOTO, hint: str = "") -> Task:
    """A Task from a CoOp-style split file: {"train"|"val"|"test": [[relative path, label, class name], ...]}.

    Paths are relative to `image_dir`; item order is kept; class names get '_' -> ' '. A missing "val" list
    is allowed (empty validation); "train" may be empty (test-only sets), "test" may not.
    """
    split_file, image_dir = Path(split_file), Path(image_dir)
    if not split_file.is_file():
        raise ClipfitError(f"split file not found: {split_file}{' (' + hint + ')' if hint else ''}")
    if not image_dir.is_dir():
        raise ClipfitError(f"image folder not found: {image_dir}{' (' + hint + ')' if hint else ''}")
    try:
        with open(split_file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ClipfitError(f"cannot read split file {split_file}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("test"), list):
        raise ClipfitError(f"split file {split_file} must be a JSON object with 'train', 'val' and 'test' lists")
    splits: dict[str, list[Item]] = {}
    for split in ("train", "val", "test"):
        rows = data.get(split) or []
        out = []
        for i, row in enumerate(rows):
            where = f"{split_file} [{split}][{i}]"
            try:
                path, label, cname = row
                label = int(label)
            except (TypeError, ValueError):
                raise ClipfitError(f"{where}: expected [relative path, label, class name], got {row!r}") from None
            out.append(Item(check_relpath(path, where), label, str(cname).replace("_", " ")))
        splits[split] = out
    if not splits["test"]:
        raise ClipfitError(f"split file {split_file} has an empty 'test' list")
    classnames = classnames_from_items(splits["train"] + splits["val"] + splits["test"], str(split_file))
    return Task(name=name or split_file.stem, classnames=classnames, template=template, reader=FileReader(image_dir), **splits)


# ---------------------------------------------------------------------------------------------------------
# The split-file datasets


@dataclass(frozen=True)
class SplitSet:
    name: str
    images: str  # image folder under the dataset's folder ("" = the folder itself)
    split_file: str
    template: str
    title: str
    aliases: tuple[str, ...] = ()


SPLIT_SETS = [
    SplitSet("caltech101", "101_ObjectCategories", "split_zhou_Caltech101.json", PHOTO, "Caltech101", ("caltech",)),
    SplitSet("oxford_pets", "images", "split_zhou_OxfordPets.json", "a photo of a {}, a type of pet.", "OxfordPets", ("pets",)),
    SplitSet("stanford_cars", "", "split_zhou_StanfordCars.json", PHOTO, "StanfordCars", ("cars",)),
    SplitSet("oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json", "a photo of a {}, a type of flower.", "OxfordFlowers (Flowers102)", ("flowers",)),
    SplitSet("food101", "images", "split_zhou_Food101.json", "a photo of {}, a type of food.", "Food101", ("food",)),
    SplitSet("sun397", "SUN397", "split_zhou_SUN397.json", PHOTO, "SUN397", ("sun",)),
    SplitSet("dtd", "images", "split_zhou_DescribableTextures.json", "{} texture.", "DescribableTextures", ("textures",)),
    SplitSet("eurosat", "2750", "split_zhou_EuroSAT.json", "a centered satellite photo of {}.", "EuroSAT", ()),
    SplitSet("ucf101", "UCF-101-midframes", "split_zhou_UCF101.json", "a photo of a person doing {}.", "UCF101 (middle frames)", ("ucf",)),
]


def _split_builder(s: SplitSet):
    def build(root: str | None) -> Task:
        base = dataset_folder(root, s.name)
        image_dir = base / s.images if s.images else base
        return read_split_file(base / s.split_file, image_dir, name=s.name, template=s.template,
                               hint=f"download it {DATASETS_MD}")

    build.__doc__ = f"{s.title}, CoOp split ({s.split_file})"
    return build


for _s in SPLIT_SETS:
    _b = _split_builder(_s)
    register_dataset(_s.name, help=_b.__doc__, aliases=_s.aliases, template=_s.template)(_b)


# ---------------------------------------------------------------------------------------------------------
# FGVC-Aircraft (text files)


def _lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise ClipfitError(f"{what} not found: {path} ({DATASETS_MD})")
    with open(path, encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip()]


AIRCRAFT = "a photo of a {}, a type of aircraft."


def build_fgvc_aircraft(root: str | None) -> Task:
    """FGVC-Aircraft (100 variants), CoOp layout (images/, variants.txt, images_variant_*.txt)"""
    base = dataset_folder(root, "fgvc_aircraft")
    classnames = _lines(base / "variants.txt", "class list")
    index = {c: i for i, c in enumerate(classnames)}
    splits = {}
    for split in ("train", "val", "test"):
        f = base / f"images_variant_{split}.txt"
        items = []
        for line in _lines(f, "split file"):
            im, _, cname = line.partition(" ")
            if cname not in index:
                raise ClipfitError(f"{f}: variant {cname!r} (image {im}) is not in {base / 'variants.txt'}")
            items.append(Item(check_relpath(f"{im}.jpg", str(f)), index[cname], cname))
        splits[split] = items
    image_dir = base / "images"
    if not image_dir.is_dir():
        raise ClipfitError(f"image folder not found: {image_dir} ({DATASETS_MD})")
    return Task(name="fgvc_aircraft", classnames=classnames, template=AIRCRAFT, reader=FileReader(image_dir), **splits)


register_dataset("fgvc_aircraft", help=build_fgvc_aircraft.__doc__, aliases=("aircraft",),
                 template=AIRCRAFT)(build_fgvc_aircraft)


# ---------------------------------------------------------------------------------------------------------
# ImageNet and its variants (class folders)


def read_classnames(path: Path) -> dict[str, str]:
    """classnames.txt: '<wnid> <class name>' lines, in file order."""
    out = {}
    for line in _lines(path, "ImageNet class names"):
        wnid, _, name = line.partition(" ")
        out[wnid] = name.strip()
    return out


def _imagenet_classnames(folder: Path) -> dict[str, str]:
    """classnames.txt of an ImageNet folder (the dataset's own, or else the one in root/imagenet/)."""
    paths = list(dict.fromkeys((folder / "classnames.txt", folder.parent / "imagenet" / "classnames.txt")))
    for p in paths:
        if p.is_file():
            return read_classnames(p)
    raise ClipfitError(f"ImageNet class names not found: {' or '.join(map(str, paths))} (copy CoOp's classnames.txt "
                       f"there, {DATASETS_MD})")


def _image_files(folder: Path) -> list[str]:
    """Sorted names of the non-hidden image files directly in `folder`."""
    return sorted(e.name for e in os.scandir(folder)
                  if e.is_file() and not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in IMAGE_EXTS)


def _class_dirs(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise ClipfitError(f"image folder not found: {folder} ({DATASETS_MD})")
    dirs = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    if not dirs:
        raise ClipfitError(f"no class folders in {folder} ({DATASETS_MD})")
    return dirs


def _folder_items(image_dir: Path, sub: str, labelled: list[tuple[str, int, str]]) -> list[Item]:
    """Items for (folder, label, class name) triples; keys are '<sub>/<folder>/<file>' relative to image_dir."""
    prefix = f"{sub}/" if sub else ""
    return [Item(f"{prefix}{d}/{f}", y, c) for d, y, c in labelled for f in _image_files(image_dir / sub / d)]


def _named(dirs: list[str], names: dict[str, str], where: Path) -> list[tuple[str, int, str]]:
    missing = [d for d in dirs if d not in names]
    if missing:
        raise ClipfitError(f"class folder(s) {', '.join(missing[:3])} in {where} are not in classnames.txt")
    return [(d, y, names[d]) for y, d in enumerate(dirs)]


def build_imagenet(root: str | None) -> Task:
    """ImageNet-1k, CoOp layout (images/{train,val}/<wnid>/, classnames.txt); test = the official val set"""
    base = dataset_folder(root, "imagenet")
    names = _imagenet_classnames(base)
    image_dir = base / "images"
    dirs = _class_dirs(image_dir / "train")
    labelled = _named(dirs, names, image_dir / "train")
    train = _folder_items(image_dir, "train", labelled)
    val_dirs = _class_dirs(image_dir / "val")
    if val_dirs != dirs:
        raise ClipfitError(f"{image_dir / 'val'} and {image_dir / 'train'} must hold the same class folders")
    test = _folder_items(image_dir, "val", labelled)
    return Task(name="imagenet", classnames=[c for _, _, c in labelled], template=PHOTO, train=train,
                val=[], test=test, reader=FileReader(image_dir))


def build_imagenetv2(root: str | None) -> Task:
    """ImageNet-V2 matched-frequency (test only): imagenetv2-matched-frequency-format-val/<0..999>/"""
    base = dataset_folder(root, "imagenetv2")
    names = _imagenet_classnames(base)
    wnids = sorted(names)
    image_dir = base / "imagenetv2-matched-frequency-format-val"
    dirs = _class_dirs(image_dir)
    bad = [d for d in dirs if not d.isdigit() or int(d) >= len(wnids)]
    if bad:
        raise ClipfitError(f"{image_dir}: class folders must be named 0..{len(wnids) - 1}, found {bad[0]!r}")
    labelled = [(d, int(d), names[wnids[int(d)]]) for d in sorted(dirs, key=int)]
    test = _folder_items(image_dir, "", labelled)
    return Task(name="imagenetv2", classnames=[names[w] for w in wnids], template=PHOTO, train=[], val=[],
                test=test, reader=FileReader(image_dir))


def _variant_builder(name: str, images: str, title: str):
    def build(root: str | None) -> Task:
        base = dataset_folder(root, name)
        names = _imagenet_classnames(base)
        image_dir = base / images
        labelled = _named(_class_dirs(image_dir), names, image_dir)
        return Task(name=name, classnames=[c for _, _, c in labelled], template=PHOTO, train=[], val=[],
                    test=_folder_items(image_dir, "", labelled), reader=FileReader(image_dir))

    build.__doc__ = f"{title} (test only): {images}/<wnid>/"
    return build


build_imagenet_sketch = _variant_builder("imagenet_sketch", "images", "ImageNet-Sketch")
build_imagenet_a = _variant_builder("imagenet_a", "imagenet-a", "ImageNet-A, 200 classes")
build_imagenet_r = _variant_builder("imagenet_r", "imagenet-r", "ImageNet-R, 200 classes")

register_dataset("imagenet", help=build_imagenet.__doc__, template=PHOTO)(build_imagenet)
for _name, _b, _aliases in [
    ("imagenetv2", build_imagenetv2, ("imagenet-v2",)),
    ("imagenet_sketch", build_imagenet_sketch, ("imagenet-sketch",)),
    ("imagenet_a", build_imagenet_a, ("imagenet-a",)),
    ("imagenet_r", build_imagenet_r, ("imagenet-r",)),
]:
    register_dataset(_name, test_only=True, help=_b.__doc__, aliases=_aliases, template=PHOTO)(_b)

"""`imagefolder:PATH`: one sub-folder per class, optionally already split into train/ val/ test/.

Layouts
- PATH/train/<class>/..., with optional PATH/val/<class>/... and PATH/test/<class>/...: the classes are the
  sub-folders of train/ (sorted); val/ and test/ may only use those class folders.
  Missing val/: 20% of each training class is held out as validation (the rule below with no test part).
  Missing test/: val/ is the test set (as ImageNet's val is) and validation is held out from train/ as above.
  Neither: train/ is split like a flat folder.
- otherwise PATH/<class>/...: every class is split by `split_counts` (50% train / 20% val / 30% test).

Split rule (deterministic, independent of the other classes and of the file system's order): the class's
image paths are sorted, shuffled with `random.Random("clipfit:" + class folder name)`, and cut into
val = round(0.2 n), test = round(0.3 n) (rounding halves up), train = the rest, keeping at least one
image in val when n >= 3 and in test when n >= 2. Each split is listed in sorted key order, class by class.

Class name = folder name with '_' replaced by a space. Images: jpg jpeg png bmp gif webp tif tiff (any case),
found recursively; hidden files and folders are skipped. Template "a photo of a {}.".

Symbolic links are followed once, by real path, so an image counts once, in its own class: a link to a folder above
(a loop), to a folder already read or into another class folder, and a second path to a file already counted are
skipped, with one warning line; a link to a file outside the image folder is refused.
"""
from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from ...errors import ClipfitError
from ...progress import warn
from ..dataset_registry import register_prefix
from ..images import FileReader
from ..types import Item, Task

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
DEFAULT_TEMPLATE = "a photo of a {}."
SPLIT_NAMES = ("train", "val", "test")
K = TypeVar("K", str, int)


def _inside(path: str, folder: str) -> bool:
    """Whether real path `path` is `folder` or lies under it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def list_images(folder: Path, skipped: list[str] | None = None, others: dict[str, str] | None = None) -> list[Path]:
    """Image files under `folder` (recursive, hidden entries skipped), sorted by path. Symbolic links are followed
    once: a link to a folder enclosing `folder` (a loop), already walked or inside one of `others` (name -> real path
    of a folder whose images belong elsewhere: another class), and a second path to a file already found, are left
    out (and described in `skipped`)."""
    top = os.path.realpath(folder)
    walked, found = {top}, {}
    others = {n: r for n, r in (others or {}).items() if not _inside(top, r)}
    note = skipped.append if skipped is not None else (lambda line: None)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            full = os.path.join(dirpath, d)
            real = os.path.realpath(full)
            other = next((n for n, r in others.items() if _inside(real, r)), None)
            if _inside(top, real):
                note(f"{full} leads back up to {real} (a loop)")
            elif other is not None:
                note(f"{full} leads into class folder {other}")
            elif real in walked:
                note(f"{full} leads to {real}, already read")
            else:
                walked.add(real)
                keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            if f.startswith(".") or os.path.splitext(f)[1].lower() not in IMAGE_EXTS:
                continue
            path = Path(dirpath) / f
            real = os.path.realpath(path)
            other = next((n for n, r in others.items() if _inside(real, r)), None)
            if other is not None:
                note(f"{path} leads into class folder {other}")
            elif real in found:
                note(f"{path} is a second path to {found[real]}")
            else:
                found[real] = path
    return sorted(found.values())


def class_folders(folder: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of `folder`."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def split_counts(n: int, p_val: float = 0.2, p_test: float = 0.3) -> tuple[int, int, int]:
    """(train, val, test) sizes for a class of n images; see the module docstring."""
    n_val = max(1, int(n * p_val + 0.5)) if n >= 3 and p_val > 0 else 0
    n_test = max(1, int(n * p_test + 0.5)) if n >= 2 and p_test > 0 else 0
    return n - n_val - n_test, n_val, n_test


def images_needed(shots: int) -> int:
    """The fewest images a class folder needs for `shots` training images under the split rule."""
    n = shots
    while split_counts(n)[0] < shots:
        n += 1
    return n


def split_class(keys: Sequence[K], seed_text: str, p_val: float = 0.2, p_test: float = 0.3) -> tuple[list[K], list[K], list[K]]:
    """Deterministically split one class's keys (paths or indices) into (train, val, test), each returned sorted."""
    keys = sorted(keys)
    random.Random(f"clipfit:{seed_text}").shuffle(keys)
    n_tr, n_val, _ = split_counts(len(keys), p_val, p_test)
    parts = keys[:n_tr], keys[n_tr:n_tr + n_val], keys[n_tr + n_val:]
    return tuple(sorted(p) for p in parts)  # type: ignore[return-value]


def display_name(folder: str) -> str:
    return folder.replace("_", " ").strip()


def _check_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise ClipfitError(f"{what} not found: {path}" if not path.exists() else f"{what} is not a folder: {path}")


def _class_images(folders: list[str], base: Path, where: Path) -> dict[str, list[str]]:
    """folder -> sorted keys (paths relative to `base`) for each class folder under `where`; errors on empty classes
    and on files outside `base`. Each image counts once, in its own class (see the module docstring)."""
    real_base = os.path.realpath(base)
    real_class = {f: os.path.realpath(where / f) for f in folders}
    owner: dict[str, str] = {}  # real path -> the key that counts it
    skipped: list[str] = []
    out = {}
    for f in folders:
        keys = []
        for p in list_images(where / f, skipped, {g: r for g, r in real_class.items() if g != f}):
            real, key = os.path.realpath(p), p.relative_to(base).as_posix()
            if not _inside(real, real_base):
                raise ClipfitError(f"image folder {base}: {key} leads to {real}, outside the image folder (a symbolic "
                                   "link); clipfit reads only images inside it: copy the file in")
            if real in owner:
                skipped.append(f"{p} is a second path to {owner[real]}")
            else:
                owner[real] = key
                keys.append(key)
        if not keys:
            raise ClipfitError(f"class folder {where / f} has no images ({', '.join(sorted(IMAGE_EXTS))})")
        out[f] = keys
    if skipped:
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        warn(f"image folder {base}: {len(skipped)} symbolic link(s) skipped, so that each image counts once, in its "
             f"own class: {skipped[0]}{more}")
    return out


def read_image_folder(path: str | os.PathLike, name: str | None = None, template: str = DEFAULT_TEMPLATE) -> Task:
    """Build a Task from an image folder (see the module docstring for layouts and the split rule)."""
    root = Path(os.path.expanduser(str(path)))
    _check_dir(root, "image folder")
    name = name or f"imagefolder:{path}"
    pre_split = (root / "train").is_dir()
    if pre_split:
        folders = class_folders(root / "train")
        if not folders:
            raise ClipfitError(f"no class folders in {root / 'train'}: put one sub-folder of images per class there")
        known = set(folders)
        train_map = _class_images(folders, root, root / "train")
        given: dict[str, dict[str, list[str]]] = {}
        for split in ("val", "test"):
            d = root / split
            if d.is_dir():
                sub = class_folders(d)
                unknown = sorted(set(sub) - known)
                if unknown:
                    raise ClipfitError(f"{d} has class folders missing from {root / 'train'}: {', '.join(unknown[:5])}")
                given[split] = _class_images(sub, root, d)
        if "test" not in given and "val" in given:
            given["test"] = given.pop("val")
        parts: dict[str, dict[str, list[str]]] = {s: {} for s in SPLIT_NAMES}
        for f in folders:
            if "test" not in given:
                parts["train"][f], parts["val"][f], parts["test"][f] = split_class(train_map[f], f)
            elif "val" not in given:
                parts["train"][f], parts["val"][f], _ = split_class(train_map[f], f, p_test=0.0)
                parts["test"][f] = given["test"].get(f, [])
            else:
                parts["train"][f] = train_map[f]
                parts["val"][f], parts["test"][f] = given["val"].get(f, []), given["test"].get(f, [])
    else:
        folders = class_folders(root)
        if not folders:
            raise ClipfitError(f"no class folders in {root}: put one sub-folder of images per class there (or train/ val/ test/ folders)")
        images = _class_images(folders, root, root)
        parts = {s: {} for s in SPLIT_NAMES}
        for f in folders:
            parts["train"][f], parts["val"][f], parts["test"][f] = split_class(images[f], f)
    classnames = [display_name(f) for f in folders]
    items = {s: [Item(k, y, classnames[y]) for y, f in enumerate(folders) for k in parts[s].get(f, [])] for s in SPLIT_NAMES}
    return Task(name=name, classnames=classnames, template=template, reader=FileReader(root, "image folder"), **items)


@register_prefix("imagefolder")
def _imagefolder(spec: str) -> Task:
    return read_image_folder(spec)

"""`clipfit datasets check`: which datasets are under `--root`, which are missing or incomplete, and what to do.

A dataset is *missing* when its folder is not under `--root`; *incomplete* when the folder is there but its reader
cannot build it (a split file, class-names file or metadata file missing or damaged: the reader's one line names
it), or not every image its split names is on disk (how many it names, how many are there, the first missing);
*found* otherwise, with its classes and split sizes. `verify` also decodes every image (slow on purpose). What to do
comes from `sources.SOURCES`.
"""
from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ClipfitError
from ..progress import progress_bar
from .catalogue import DATASETS, expand_datasets, load_task
from .images import FileReader
from .sources import SOURCES, Source
from .types import Task

FOUND, MISSING, INCOMPLETE = "found", "missing", "incomplete"
SPLITS = ("train", "val", "test")


@dataclass
class Finding:
    """One dataset's state under `--root`: `detail` says what was found or what is wrong, `fix` what to do."""

    name: str
    status: str
    detail: str
    classes: int | None = None
    sizes: dict[str, int] | None = None
    template: str | None = None
    fix: list[str] = field(default_factory=list)


def fix_lines(name: str, root: str | os.PathLike) -> list[str]:
    """What to do about a missing or incomplete dataset: the folder and what it holds, what to get from where, the
    split it is read with."""
    s: Source | None = SOURCES.get(name)
    if s is None:
        return []
    return [f"put in {Path(root) / s.folder}/: {s.layout}",
            *(f"get {f.what}: {f.url}" for f in s.fetch), f"split: {s.split}"]


def absent(base: Path, keys: Sequence[str]) -> list[str]:
    """The keys (paths relative to `base`) with no file on disk, listing each folder once (fast for 10^5 files)."""
    by_dir: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for k in keys:
        d, _, f = k.rpartition("/")
        by_dir[d].append((k, f))
    out = []
    for d, files in by_dir.items():
        try:
            names = {e.name for e in os.scandir(base / d) if not e.is_dir()}
        except OSError:
            names = set()
        out += [k for k, f in files if f not in names]
    return out


def _keys(task: Task) -> list[str]:
    return list(dict.fromkeys(it.key for s in SPLITS for it in getattr(task, s)))


def undecodable(task: Task, name: str, progress: bool) -> list[str]:
    """'path: error' for every image of the task that cannot be decoded."""
    bad = []
    for k in progress_bar(_keys(task), desc=f"verify {name}", progress=progress):
        try:
            task.reader(k)
        except ClipfitError as e:
            bad.append(str(e))
    return bad


def check_dataset(name: str, root: str, verify: bool = False, progress: bool = False) -> Finding:
    """The state of one catalogue dataset under `root`."""
    entry = DATASETS.get(name)
    src = SOURCES.get(entry.name)
    if src is not None and not (Path(os.path.expanduser(root)) / src.folder).is_dir():
        return Finding(entry.name, MISSING, f"{Path(root) / src.folder}/ not found", fix=fix_lines(entry.name, root))
    try:
        task = load_task(entry.name, root)
    except ClipfitError as e:
        return Finding(entry.name, INCOMPLETE if src else MISSING, str(e), fix=fix_lines(entry.name, root))
    sizes = {s: len(getattr(task, s)) for s in SPLITS}
    found = Finding(entry.name, FOUND, f"{len(task.classnames):,} classes; " + " / ".join(
        f"{sizes[s]:,}" for s in SPLITS) + " images (train / val / test)", len(task.classnames), sizes, task.template)
    problem = _files_problem(task, entry.name, verify, progress)
    if problem:
        found.status, found.detail, found.fix = INCOMPLETE, problem, fix_lines(entry.name, root)
    return found


def _files_problem(task: Task, name: str, verify: bool, progress: bool) -> str | None:
    """What is wrong with the image files a task names: absent files, or (`verify`) undecodable ones."""
    if not isinstance(task.reader, FileReader):
        return None  # images held in memory (the reader read them all)
    keys = _keys(task)
    gone = absent(task.reader.root, keys)
    if gone:
        return (f"its split names {len(keys):,} images, {len(keys) - len(gone):,} of them are on disk under "
                f"{task.reader.root} (the first missing: {gone[0]})")
    bad = undecodable(task, name, progress) if verify else []
    if bad:
        return f"{len(bad):,} of the {len(keys):,} images cannot be decoded (first: {bad[0]})"
    return None


def check(names: Sequence[str] | None, root: str, verify: bool = False, progress: bool = False) -> list[Finding]:
    """Findings for `names` (catalogue names or suites; default: every dataset read from --root)."""
    r = Path(os.path.expanduser(root))
    if not r.is_dir():
        raise ClipfitError(f"--root {root} is not a folder")
    chosen = expand_datasets(names) if names else list(SOURCES)
    return [check_dataset(n, root, verify, progress) for n in chosen]


def render(findings: list[Finding], root: str) -> str:
    counts = {s: sum(f.status == s for f in findings) for s in (FOUND, INCOMPLETE, MISSING)}
    head = f"datasets under {root}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + \
        f" (of {len(findings)})"
    width = max(len(f.name) for f in findings)
    lines = [head]
    for f in findings:
        lines.append(f"{f.name:{width}s}  {f.status:10s}  {f.detail}")
        lines += [" " * (width + 4) + x for x in f.fix]
    return "\n".join(lines)


def as_json(findings: list[Finding], root: str) -> dict:
    return {"root": root, "ok": all(f.status == FOUND for f in findings), "datasets": [asdict(f) for f in findings]}

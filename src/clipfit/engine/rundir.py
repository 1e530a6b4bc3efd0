"""The run directory: every file a run writes, where it lives, how it is read and written.

RUN_DIR/
  config.json             model, dataset, method and training settings, classes, template(s), seed, versions
  items.json              the exact training and validation items ([key, label, classname]) used
  tuned.safetensors       the tuned weights only (the backbone is reloaded from `model`)
  metrics.json            validation (selection) and test accuracy, training history
  log.txt                 one line per epoch
  manifest.json           the SHA-256 of every other file, checked whenever clipfit reads one

Runs are transactions. A run is written into a hidden sibling, RUN_DIR/../.NAME.partial/, and renamed to
RUN_DIR only when it finished; an existing RUN_DIR (`--overwrite`) is replaced at that moment, never before, so a
run that fails leaves the previous one intact. While training, the partial directory also holds
checkpoint.safetensors: the state after the last finished epoch (weights, optimiser, best so far, every random
number generator), from which `--resume` (and a grid, by itself) continues an interrupted run exactly. A partial
directory without a checkpoint holds nothing worth keeping and is removed.

`--overwrite` replaces only what clipfit wrote (`RunDir.foreign`): a folder every entry of which its manifest lists
(a run; an export, `kind="export"`), or an empty folder. It refuses a folder holding anything else, and a target that
is, or contains, what the run reads (`check_target`'s `protect`: the training images, the dataset root, the model, the
source run of an export). The same checks run again when the finished run is swapped in.

A run holds RUN_DIR/../.NAME.lock (an flock, with the holder's pid inside) from start to finish; a second run into
the same RUN_DIR is refused. The operating system releases the lock of a process that dies, so the lock file of a
killed run never blocks the next one.

Weights are safetensors only (no pickle is read); every file is written atomically.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.types import Item
from ..errors import ClipfitError
from ..io import (
    atomic_write_bytes,
    check_finite,
    json_bytes,
    os_error,
    parse_json,
    read_bytes,
    sha256,
    tensors_from_bytes,
    tensors_to_bytes,
)

FORMAT = 1


def items_to_json(items: list[Item]) -> list[list]:
    return [[it.key, it.label, it.classname] for it in items]


def items_from_json(rows: list[list]) -> list[Item]:
    return [Item(str(k), int(y), str(c)) for k, y, c in rows]


@dataclass
class Checkpoint:
    """The state after `epoch` finished epochs."""

    epoch: int
    tuned: dict[str, torch.Tensor]
    best: dict
    history: list[dict]
    rng_tensors: dict[str, torch.Tensor]
    rng_meta: dict


def _entries(folder: Path) -> list[str]:
    """Every file and folder under `folder` (paths relative to it, sorted); symbolic links are listed, not followed."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        out += [(rel / n).as_posix() for n in dirnames + filenames]
    return sorted(out)


_TEMP = re.compile(r"\.(.+)\.[A-Za-z0-9_]+\.tmp")  # what `atomic_write_bytes` leaves when killed: .NAME.XXXXXXXX.tmp


def check_protected(target: Path, protect: Iterable[tuple[str, str | os.PathLike]], flag: str) -> None:
    """A one-line error when `target` is, or contains, one of `protect` ((what it is, path) pairs: what a run reads),
    compared by real path: writing there would replace it."""
    t = Path(os.path.realpath(target))
    for what, p in protect:
        rp = Path(os.path.realpath(p))
        if t == rp:
            raise ClipfitError(f"{flag} {target} is {what}; writing there would replace it: choose another {flag}")
        if t in rp.parents:
            raise ClipfitError(f"{flag} {target} contains {what} ({p}); replacing the folder would delete it: choose "
                               f"another {flag}")


class RunDir:
    """One run directory (it need not exist yet). `kind`: "run" (`clipfit train --out`) or "export" (`clipfit export
    --merged`), the only kind of folder this one may replace, named in its messages by `flag`."""

    CONFIG, ITEMS, TUNED, METRICS, LOG, CHECKPOINT, MANIFEST = (
        "config.json", "items.json", "tuned.safetensors", "metrics.json", "log.txt", "checkpoint.safetensors",
        "manifest.json")
    FILES = (CONFIG, ITEMS, TUNED, METRICS, LOG, CHECKPOINT, MANIFEST)

    def __init__(self, path: str | os.PathLike, kind: str = "run"):
        self.path = Path(path)
        self.kind = kind
        self.flag = "--merged" if kind == "export" else "--out"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def _sibling(self, suffix: str) -> Path:
        p = Path(os.path.abspath(self.path))
        return p.with_name(f".{p.name}.{suffix}")

    @property
    def partial(self) -> RunDir:
        """Where this run is written until it finished (and where an interrupted run's checkpoint lives)."""
        return RunDir(self._sibling("partial"), self.kind)

    @property
    def lock_file(self) -> Path:
        return self._sibling("lock")

    # -- state -------------------------------------------------------------------------------------------------
    @property
    def is_run(self) -> bool:
        return self.file(self.CONFIG).exists()

    @property
    def is_finished(self) -> bool:
        """Training finished: the tuned weights and the metrics are written."""
        return self.file(self.TUNED).exists() and self.file(self.METRICS).exists()

    @property
    def checkpoint_dir(self) -> RunDir | None:
        """The directory holding this run's checkpoint: its partial directory (or, for a run of clipfit 0.1, the
        run directory itself); None when there is none."""
        for d in (self.partial, self):
            if d.file(self.CHECKPOINT).exists():
                return d
        return None

    @property
    def has_checkpoint(self) -> bool:
        """An interrupted run that `--resume` can continue."""
        return self.checkpoint_dir is not None

    def require_trained(self) -> None:
        """A one-line error unless this directory holds a trained run."""
        if not self.is_run:
            if self.partial.is_run:
                raise ClipfitError(f"{self.path} has not finished training (its unfinished run is in {self.partial.path}); "
                                   "continue it with `clipfit train --out ... --resume`")
            raise ClipfitError(f"{self.path} is not a run directory (no {self.CONFIG}); give the --out of `clipfit train`")
        if not self.file(self.TUNED).exists():
            if self.file(self.METRICS).exists():  # the run finished: its weights were removed since
                raise ClipfitError(f"{self.path} has no {self.TUNED}: the run finished, but the file was removed since; "
                                   "restore it, or train the run again with --overwrite")
            if self.has_checkpoint:
                raise ClipfitError(f"{self.path} has no {self.TUNED}: the run did not finish; continue it with --resume "
                                   "or train it again with --overwrite")
            raise ClipfitError(f"{self.path} has no {self.TUNED}: the run did not finish, and has no checkpoint to "
                               "continue from; train it again with --overwrite")

    # -- transactions ------------------------------------------------------------------------------------------
    def foreign(self) -> str | None:
        """Why this folder is not one clipfit may replace (None when it may: empty, or every entry written by clipfit
        as a folder of this kind). A run or an export lists every file in its manifest (a run's log.txt is listed
        when it finishes; temporary files of a killed write are its own); a run of clipfit 0.1 has no manifest and
        holds only the run files."""
        entries = _entries(self.path)
        if not entries:
            return None
        listed: set[str] = set()
        kind = None
        try:
            man = json.loads((self.file(self.MANIFEST)).read_bytes())
            listed = set(man["files"]) | set(man.get("pending", {})) | {self.MANIFEST}
            kind = man.get("kind", "run")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            if set(entries) <= set(self.FILES) and self.kind == "run":  # a run of clipfit 0.1
                try:
                    cfg = json.loads(self.file(self.CONFIG).read_bytes())
                    if isinstance(cfg, dict) and {"method", "model", "classnames"} <= set(cfg):
                        return None
                except (OSError, ValueError):
                    pass
            return f"it holds {entries[0]!r} and is no clipfit {self.kind} (no {self.MANIFEST} listing its files)"
        if kind != self.kind:
            return f"it is a clipfit {kind}, not {'an' if self.kind == 'export' else 'a'} {self.kind}"
        if self.kind == "run":
            listed.add(self.LOG)  # appended line by line; recorded when the run finishes
        folders = {p.as_posix() for n in listed for p in Path(n).parents}
        for e in entries:
            temp = _TEMP.fullmatch(Path(e).name)
            ours = e in listed or e in folders or (temp and (Path(e).parent / temp[1]).as_posix() in listed)
            if not ours or os.path.islink(self.path / e):
                return f"it holds {e!r}, which clipfit did not write"
        return None

    def check_target(self, overwrite: bool = False, resume: bool = False,
                     protect: Iterable[tuple[str, str | os.PathLike]] = ()) -> None:
        """A one-line error when a run with these options cannot start here (called again under the lock): the
        target is, or contains, one of `protect` (what the run reads), or holds something `--overwrite` may not
        replace (`foreign`)."""
        flag = self.flag
        try:
            if self.path.exists() and not self.path.is_dir():
                raise ClipfitError(f"{flag} {self.path} is a file, not a folder; choose another {flag}")
            above = next((p for p in self.path.parents if p.exists()), None)
            if above is not None and not above.is_dir():
                raise ClipfitError(f"{flag} {self.path}: {above} is a file, not a folder; choose another {flag}")
            check_protected(self.path, protect, flag)
            full = self.path.exists() and any(self.path.iterdir())
            if resume:
                if not self.has_checkpoint:
                    raise ClipfitError(f"nothing to resume in {self.path}: no {self.CHECKPOINT} (the run finished, or "
                                       "never completed an epoch)")
            elif full and not overwrite:
                if self.kind == "export":
                    raise ClipfitError(f"{self.path} already exists and is not empty; choose another directory or "
                                       "pass --overwrite")
                raise ClipfitError(f"run directory {self.path} already exists and is not empty; choose another --out, "
                                   "pass --resume to continue an interrupted run, or --overwrite to replace it")
            elif self.partial.has_checkpoint and not overwrite:
                raise ClipfitError(f"an interrupted run of {self.path} is in {self.partial.path}; pass --resume to "
                                   "continue it, or --overwrite to start again")
            if full:
                self._check_replaceable()
        except OSError as e:
            raise os_error(e, self.path, "use the run directory") from None

    def _check_replaceable(self) -> None:
        why = self.foreign()
        if why:
            a = "an" if self.kind == "export" else "a"
            raise ClipfitError(f"{self.flag} {self.path}: {why}; --overwrite replaces only {a} {self.kind} clipfit "
                               f"wrote (or an empty folder): choose another {self.flag}, or empty it yourself")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this run directory's lock file; a one-line error naming the holder's pid when another process does."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        path = self.lock_file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.read(fd, 200).decode("utf-8", "replace").split() or ["?"]
                    os.close(fd)
                    raise ClipfitError(f"run directory {self.path} is in use by another clipfit run (pid {holder[0]}); "
                                       "wait for it to finish, or choose another --out") from None
                try:  # the previous holder may have removed the file between our open and flock: lock the new one
                    if os.fstat(fd).st_ino == os.stat(path).st_ino:
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as e:
            raise os_error(e, path.parent, "write in") from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)

    @contextlib.contextmanager
    def transaction(self, overwrite: bool = False, resume: bool = False,
                    protect: Iterable[tuple[str, str | os.PathLike]] = ()) -> Iterator[RunDir]:
        """Lock this run directory and yield the directory to write the run into (its partial directory); when the
        block finishes, that directory replaces this one. When it fails, a partial directory with a checkpoint stays
        for `--resume`; one without is removed. `protect`: as `check_target`'s."""
        with self.lock():
            work = self._begin(overwrite, resume, protect)
            try:
                yield work
            except BaseException:
                if not work.file(self.CHECKPOINT).exists():
                    shutil.rmtree(work.path, ignore_errors=True)
                raise
            self._commit(work)

    def _begin(self, overwrite: bool, resume: bool, protect: Iterable[tuple[str, str | os.PathLike]]) -> RunDir:
        work = self.partial
        try:
            self._recover()
            self.check_target(overwrite, resume, protect)
            if resume:
                if not work.has_checkpoint:  # a run of clipfit 0.1, interrupted in place: continue it as a partial one
                    work._remove_partial()
                    os.rename(self.path, work.path)
                return work
            work._remove_partial()
            work.path.mkdir(parents=True)
            work._save_manifest({"format": FORMAT, "kind": self.kind, "files": {}})  # marks the folder as clipfit's
        except OSError as e:
            raise os_error(e, work.path, "create") from None
        return work

    def _remove_partial(self) -> None:
        """Remove this partial directory, if it is one clipfit made (empty, or marked by its manifest)."""
        if not self.path.exists():
            return
        if _entries(self.path):
            try:
                kind = json.loads(self.file(self.MANIFEST).read_bytes()).get("kind", "run")
            except (OSError, ValueError, AttributeError):
                kind = None
            if kind != self.kind or self.path.is_symlink():
                raise ClipfitError(f"{self.path} is where clipfit writes an unfinished {self.kind}, but it holds files "
                                   "clipfit did not write; move them away")
        shutil.rmtree(self.path)

    def _commit(self, work: RunDir) -> None:
        """Replace this directory by the finished `work` directory (two renames; `_recover` completes them after a
        crash between the two)."""
        try:
            if work.file(self.LOG).exists():
                work._record(self.LOG)
            old = None
            if self.path.exists():
                why = self.foreign()  # changed while this run was written
                if why:
                    raise ClipfitError(f"{self.flag} {self.path}: {why}, so it is not replaced; the finished {self.kind} "
                                       f"is in {work.path}: move it away before the next run")
                old = self._sibling(f"old-{os.getpid()}")
                os.rename(self.path, old)
            os.rename(work.path, self.path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as e:
            raise os_error(e, self.path, "move the finished run into") from None

    def _recover(self) -> None:
        """Finish a commit that a crash interrupted between its two renames, and remove replaced runs."""
        olds = sorted(Path(p) for p in glob.glob(glob.escape(str(self._sibling("old-"))) + "*"))
        if not olds:
            return
        if not self.path.exists():
            done = self.partial
            if done.is_finished and not done.file(self.CHECKPOINT).exists():
                os.rename(done.path, self.path)
            else:
                os.rename(olds.pop(0), self.path)
        for o in olds:
            shutil.rmtree(o, ignore_errors=True)

    # -- files and their checksums -----------------------------------------------------------------------------
    def _manifest(self) -> dict | None:
        path = self.file(self.MANIFEST)
        if not path.exists():
            return None  # a run of clipfit 0.1: nothing to check against
        man = parse_json(read_bytes(path), path)
        if not isinstance(man, dict) or not isinstance(man.get("files"), dict):
            raise ClipfitError(f"{path} is damaged (no file list); train the run again")
        return man

    def _save_manifest(self, man: dict, durable: bool = True) -> None:
        atomic_write_bytes(self.file(self.MANIFEST), json_bytes(man), durable)

    def _write(self, name: str, data: bytes, durable: bool = True) -> None:
        """Write one file and record its checksum. The manifest first lists the new checksum as pending, so a crash
        at any point leaves a file whose checksum the manifest holds. `durable=False` (the checkpoint, written every
        epoch) skips the fsyncs: safe when the process dies, not always when the machine does."""
        digest = sha256(data)
        man = self._manifest() or {"format": FORMAT, "files": {}}
        man.setdefault("pending", {})[name] = digest
        self._save_manifest(man, durable)
        atomic_write_bytes(self.file(name), data, durable)
        man["files"][name] = digest
        del man["pending"][name]
        if not man["pending"]:
            del man["pending"]
        self._save_manifest(man, durable)

    def _record(self, name: str) -> None:
        """Record the checksum of a file written otherwise (the log, appended line by line)."""
        man = self._manifest() or {"format": FORMAT, "files": {}}
        man["files"][name] = sha256(read_bytes(self.file(name)))
        self._save_manifest(man)

    def record_all(self) -> None:
        """Record the checksum of every file in this folder (an export, written by transformers' save_pretrained)."""
        man = self._manifest() or {"format": FORMAT, "kind": self.kind, "files": {}}
        man["files"] = {e: sha256(read_bytes(self.file(e))) for e in _entries(self.path)
                        if e != self.MANIFEST and self.file(e).is_file()}
        self._save_manifest(man)

    def _read(self, name: str) -> bytes:
        """The bytes of one file, checked against the manifest."""
        path = self.file(name)
        data = read_bytes(path, name)
        man = self._manifest()
        if man is not None:
            known = {man["files"].get(name), man.get("pending", {}).get(name)} - {None}
            if known and sha256(data) not in known:
                todo = ("start the run again with --overwrite" if name == self.CHECKPOINT else
                        f"restore the file or train the run again (changed on purpose? delete its entry in {self.MANIFEST})")
                raise ClipfitError(f"{name} does not match its checksum: the file was changed or damaged ({path}); {todo}")
        return data

    def _forget(self, name: str) -> None:
        self.file(name).unlink(missing_ok=True)
        man = self._manifest()
        if man is not None and name in man["files"]:
            del man["files"][name]
            self._save_manifest(man)

    def write_file(self, name: str, data: bytes, durable: bool = True) -> None:
        """Write a file of this run beyond the standard ones (recorded analyses, event files); `name` may hold
        a sub-folder. Its checksum goes into the manifest like every other file's."""
        self._write(name, data, durable)

    def read_file(self, name: str) -> bytes:
        """The bytes of a file of this run, checked against the manifest."""
        return self._read(name)

    # -- JSON files --------------------------------------------------------------------------------------------
    def _read_json(self, name: str) -> Any:
        return parse_json(self._read(name), self.file(name))

    def read_config(self) -> dict:
        cfg = self._read_json(self.CONFIG)
        if not isinstance(cfg, dict) or not {"method", "model", "classnames"} <= set(cfg):
            raise ClipfitError(f"{self.file(self.CONFIG)} is not a clipfit run configuration (no method, model or "
                               "classnames); give the --out of `clipfit train`")
        return cfg

    def write_config(self, config: dict) -> None:
        self._write(self.CONFIG, json_bytes({"format": FORMAT, **config}))

    def read_items(self) -> dict[str, list[Item]]:
        rec = self._read_json(self.ITEMS)
        try:
            return {"train": items_from_json(rec["train"]), "val": items_from_json(rec.get("val", []))}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ClipfitError(f"{self.file(self.ITEMS)} is not a list of training items; the file was changed or "
                               "damaged") from None

    def write_items(self, train: list[Item], val: list[Item]) -> None:
        self._write(self.ITEMS, json_bytes({"train": items_to_json(train), "val": items_to_json(val)}))

    def read_metrics(self) -> dict | None:
        return self._read_json(self.METRICS) if self.file(self.METRICS).exists() else None

    def write_metrics(self, metrics: dict) -> None:
        self._write(self.METRICS, json_bytes(metrics))

    @contextlib.contextmanager
    def logger(self) -> Iterator[Callable[[str], None]]:
        """A function that appends one line to log.txt (flushed at once)."""
        try:
            f = open(self.file(self.LOG), "a", encoding="utf-8")
        except OSError as e:
            raise os_error(e, self.file(self.LOG), "write") from None
        with f:
            def log(line: str) -> None:
                f.write(line + "\n")
                f.flush()

            yield log

    # -- weights -----------------------------------------------------------------------------------------------
    def _read_tensors(self, name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        tensors, meta = tensors_from_bytes(self._read(name), self.file(name))
        check_finite(tensors, self.file(name))
        return tensors, meta

    def read_tuned(self) -> dict[str, torch.Tensor]:
        return self._read_tensors(self.TUNED)[0]

    def write_tuned(self, tensors: dict[str, torch.Tensor], method: str) -> None:
        check_finite(tensors, self.file(self.TUNED))
        meta = json.dumps({"method": method, "format": FORMAT})  # one key: safetensors orders several at random
        self._write(self.TUNED, tensors_to_bytes(tensors, {"clipfit_tuned": meta}))

    def backbone_weights(self) -> dict[str, torch.Tensor]:
        """The tuned weights of this run that are backbone parameters (name as in the backbone model)."""
        prefix = "backbone.model."
        return {k[len(prefix):]: t for k, t in self.read_tuned().items() if k.startswith(prefix)}

    # -- checkpoint --------------------------------------------------------------------------------------------
    def save_checkpoint(self, tuned: dict[str, torch.Tensor], opt: torch.optim.Optimizer, epoch: int, best: dict,
                        history: list[dict], rng_tensors: dict[str, torch.Tensor] | None = None,
                        rng_meta: dict | None = None) -> None:
        """Everything needed to continue training after `epoch` as if never stopped: tuned weights, optimiser
        state, best so far, history, and the random number generators' states (`rng_*`, see engine.loop)."""
        tensors = {f"param/{n}": t for n, t in tuned.items()}
        if best["state"] is not None:
            tensors.update({f"best/{n}": t for n, t in best["state"].items()})
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                if v is not None:
                    tensors[f"opt/{i}/{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
        tensors.update({f"rng/{k}": t for k, t in (rng_tensors or {}).items()})
        meta = {"epoch": epoch, "best_acc": best["acc"], "best_epoch": best["epoch"], "history": history,
                "rng": rng_meta or {}}
        self._write(self.CHECKPOINT, tensors_to_bytes(tensors, {"clipfit_checkpoint": json.dumps(meta)}), durable=False)

    def load_checkpoint(self, opt: torch.optim.Optimizer) -> Checkpoint:
        """Restore the optimiser from the checkpoint; returns the rest of the state."""
        path = self.file(self.CHECKPOINT)
        tensors, metadata = self._read_tensors(self.CHECKPOINT)
        try:
            meta = json.loads(metadata["clipfit_checkpoint"])
            sd = opt.state_dict()
            state: dict[int, dict[str, Any]] = {}
            for k, v in tensors.items():
                if k.startswith("opt/"):
                    _, i, name = k.split("/", 2)
                    state.setdefault(int(i), {})[name] = v
            sd["state"] = state
            opt.load_state_dict(sd)
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise ClipfitError(f"{path} is not a checkpoint of this run ({type(e).__name__}: {e}); start again with "
                               "--overwrite") from None
        tuned = {k[6:]: v for k, v in tensors.items() if k.startswith("param/")}
        best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best/")} or None
        rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng/")}
        return Checkpoint(meta["epoch"], tuned, {"acc": meta["best_acc"], "epoch": meta["best_epoch"], "state": best_state},
                          meta["history"], rng, meta.get("rng", {}))

    def drop_checkpoint(self) -> None:
        self._forget(self.CHECKPOINT)

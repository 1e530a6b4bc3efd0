"""Progress for long loops: tqdm's bar on a terminal; on a pipe or a file (nohup, CI, `2> log`), where a bar is
unreadable, a plain line every 30 seconds; status lines for the steps in between."""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


def is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _Lines:
    """Progress where tqdm's bar cannot be read (stderr is a pipe or a file): one line every `every` seconds."""

    every = 30.0

    def __init__(self, iterable=None, total: int | None = None, desc: str = "", initial: int = 0):
        self.iterable, self.desc, self.n, self.postfix = iterable, desc, initial, ""
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.last = time.monotonic()

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.update(1)

    def update(self, k: int = 1) -> None:
        self.n += k
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            total = f"/{self.total}" if self.total else ""
            print(f"{self.desc}: {self.n}{total}" + (f" ({self.postfix})" if self.postfix else ""), file=sys.stderr,
                  flush=True)

    def set_postfix(self, **kw) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def close(self) -> None:
        pass


def progress_bar(iterable=None, *, total: int | None = None, desc: str = "", progress: bool = True, initial: int = 0):
    """tqdm's bar on a terminal, a line every 30 s on a pipe or a file, nothing when `progress` is off."""
    if progress and not is_terminal():
        return _Lines(iterable, total, desc, initial)
    return tqdm(iterable, total=total, desc=desc, disable=not progress, leave=False, initial=initial)


def status(progress: bool):
    """A function printing one status line on stderr (nothing when `progress` is off)."""
    return (lambda line: print(f"clipfit: {line}", file=sys.stderr, flush=True)) if progress else (lambda line: None)


_WARNED: set[str] = set()


def warn(line: str) -> None:
    """One warning line on stderr, whatever the progress setting; a line already given in this process is not
    repeated (a grid reads its dataset once per run)."""
    if line not in _WARNED:
        _WARNED.add(line)
        print(f"clipfit: warning: {line}", file=sys.stderr, flush=True)

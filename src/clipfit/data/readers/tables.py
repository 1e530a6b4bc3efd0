"""Reading the small text tables that datasets ship (csv files, '<id> <value>' lines), with one-line errors that
name the file and what it should hold."""
from __future__ import annotations

import csv
from pathlib import Path

from ...errors import ClipfitError


def read_csv(path: Path, columns: tuple[str, ...], expected: str) -> list[dict[str, str]]:
    """The rows of a csv file with a header naming at least `columns`."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise ClipfitError(f"{path} has no column {', '.join(map(repr, missing))} (expected {expected})")
            return list(reader)
    except FileNotFoundError:
        raise ClipfitError(f"{path} not found (expected {expected})") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ClipfitError(f"cannot read {path}: {e} (expected {expected})") from None


def read_pairs(path: Path, line_format: str, expected: str) -> list[tuple[str, str]]:
    """'<first> <rest>' lines (blank lines skipped) as (first, rest) pairs; `line_format` describes a line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ClipfitError(f"{path} not found (expected {expected})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ClipfitError(f"cannot read {path}: {e} (expected {expected})") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        first, _, rest = line.strip().partition(" ")
        if not rest.strip():
            raise ClipfitError(f"{path}, line {n}: {line.strip()!r} is not '{line_format}' (expected {expected})")
        out.append((first, rest.strip()))
    return out


def as_int(value: str, path: Path, where: str) -> int:
    """int(value), or a one-line error naming the file and the row."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ClipfitError(f"{path}, {where}: {value!r} is not an integer") from None

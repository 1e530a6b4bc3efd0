"""The papers' numbers, as data: one CSV file per table in `numbers/`, typed in from the papers' tables with their
row and column names as printed.

A file starts with `# key: value` lines (paper, table, caption, labels, notes, and `known` lines naming a check the
paper's own numbers fail, with why), then a CSV header and one line per printed row. The first columns (named by
`labels`) name the row; a label printed once for a block of rows is left empty below it, as printed, and filled
down when rows are looked up. The other cells are numbers as printed (their printed decimals give their rounding;
"50,000" is a number), text where the paper prints text ("0.17M", "0.44ms", "-"), or a number with the printed
change from the row above in brackets ("82.96(+0.33)").
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from ..errors import ClipfitError

_NUMBER = re.compile(r"^\s*([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*(?:\(([+-]\d+(?:\.\d*)?)\))?\s*$")


@dataclass(frozen=True)
class Cell:
    """One printed cell: its text, and for a number its value, its rounding (half a unit of its last printed
    digit) and the change from the row above that the paper prints beside it, if any."""

    text: str
    value: float | None = None
    half_unit: float = 0.0
    delta: float | None = None


def parse_cell(text: str) -> Cell:
    text = text.strip()
    m = _NUMBER.match(text)
    if not m:
        return Cell(text)
    num = m.group(1).replace(",", "")  # thousands separators, as printed ("50,000")
    mantissa, _, exp = num.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    half = 0.5 * 10.0 ** (-decimals + (int(exp) if exp else 0))
    return Cell(text, float(num), half, float(m.group(2)) if m.group(2) else None)


@dataclass(frozen=True)
class Row:
    labels: tuple[str, ...]  # filled down
    printed: tuple[str, ...]  # as printed (empty below a block's first row)
    cells: dict[str, Cell]


@dataclass(frozen=True)
class Numbers:
    """One table of a paper."""

    file: str
    meta: dict[str, str]
    label_names: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = ()
    known: dict[str, str] = field(default_factory=dict)

    @property
    def paper(self) -> str:
        return self.meta["paper"]

    @property
    def table(self) -> str:
        return self.meta["table"]

    def row(self, *labels: str) -> Row:
        for r in self.rows:
            if r.labels == labels:
                return r
        raise KeyError(f"{self.file}: no row {labels}")

    def value(self, labels: tuple[str, ...] | str, column: str) -> float | None:
        labels = (labels,) if isinstance(labels, str) else labels
        return self.row(*labels).cells[column].value


def read_numbers(text: str, file: str = "<text>") -> Numbers:
    meta: dict[str, str] = {}
    notes: list[str] = []
    known: dict[str, str] = {}
    body: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            key, _, val = line[1:].partition(":")
            key, val = key.strip(), val.strip()
            if key == "note":
                notes.append(val)
            elif key == "known":
                check, _, why = val.partition("|")
                known[check.strip()] = why.strip()
            else:
                meta[key] = val
        elif line.strip():
            body.append(line)
    for key in ("paper", "table", "caption", "labels"):
        if key not in meta:
            raise ClipfitError(f"{file}: no '# {key}:' line")
    reader = csv.reader(body)
    header = next(reader)
    label_names = tuple(x.strip() for x in meta["labels"].split(","))
    if tuple(header[:len(label_names)]) != label_names:
        raise ClipfitError(f"{file}: the header starts {header[:len(label_names)]}, '# labels:' says {label_names}")
    columns = tuple(header[len(label_names):])
    rows = []
    last = [""] * len(label_names)
    for line in reader:
        if len(line) != len(header):
            raise ClipfitError(f"{file}: row {line} has {len(line)} cells, the header {len(header)}")
        printed = tuple(x.strip() for x in line[:len(label_names)])
        # a label left empty continues the block above; a new outer label starts a new block
        filled = []
        for i, x in enumerate(printed):
            if x:
                last[i] = x
                last[i + 1:] = [""] * (len(last) - i - 1)
            filled.append(last[i])
        cells = {c: parse_cell(x) for c, x in zip(columns, line[len(label_names):])}
        rows.append(Row(tuple(filled), printed, cells))
    keys = [r.labels for r in rows]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup:
        raise ClipfitError(f"{file}: two rows named {dup}")
    return Numbers(file, meta, label_names, columns, tuple(rows), tuple(notes), known)


@cache
def load_numbers(file: str) -> Numbers:
    """A numbers file shipped in the package (`clipfit/papers/numbers/FILE`)."""
    try:
        text = resources.files(__package__).joinpath("numbers", file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ClipfitError(f"no numbers file {file!r} in clipfit/papers/numbers") from None
    return read_numbers(text, file)


def numbers_files() -> list[str]:
    return sorted(p.name for p in resources.files(__package__).joinpath("numbers").iterdir() if p.name.endswith(".csv"))

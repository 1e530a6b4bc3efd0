"""The paper's printed labels -> the dimensions of our runs: each row and column label of an entry's numbers file
names a dataset, method, metric, shots, regime, ... (its own `labels`, else the paper-wide tables of its role), and a
cell is the union of its labels' dimensions with the entry's `fixed` ones."""
from __future__ import annotations

import re
from typing import Any

from .entries import ROLES, Entry
from .numbers import Numbers, Row, load_numbers


def resolve(entry: Entry, role: str, label: str) -> dict[str, Any] | None:
    """The dimensions a printed label stands for: the entry's own meaning, else the paper-wide one of its role;
    None for a label with no run of ours."""
    if label in entry.labels:
        return dict(entry.labels[label])
    if label in entry.paper_only:
        return None
    plain = re.sub(r"^\([a-z]\)\s*", "", label)  # LLU Table 1's sub-table captions: "(b) ImageNet"
    if role == "shots" and re.fullmatch(r"\d+(-shot)?", plain):
        return {"shots": int(plain.removesuffix("-shot"))}
    table = ROLES.get(role, {})
    return {role: table[plain]} if plain in table else None


def unresolved(entry: Entry) -> list[str]:
    """Printed labels of an entry's numbers that map to nothing and are not declared paper-only (typos)."""
    if not entry.numbers:
        return []
    t = load_numbers(entry.numbers)
    bad = [c for c in t.columns if resolve(entry, entry.columns, c) is None and c not in entry.paper_only]
    for r in t.rows:
        for role, lab in zip(entry.rows, r.labels):
            if resolve(entry, role, lab) is None and lab not in entry.paper_only and lab not in bad:
                bad.append(lab)
    return bad


def cell_dims(entry: Entry, t: Numbers, row: Row, column: str) -> dict[str, Any] | None:
    """The dimensions of one cell of the paper's table; None when a label of it has no run of ours."""
    dims = dict(entry.fixed)
    for role, lab in [*zip(entry.rows, row.labels), (entry.columns, column)]:
        d = resolve(entry, role, lab)
        if d is None:
            return None
        dims.update(d)
    return dims


def method_of(dims: dict[str, Any]) -> str | None:
    """The method (preset and suffix included) a cell's dimensions name, if any."""
    return dims["method"] + dims.get("suffix", "") if "method" in dims else None


def entry_methods(entry: Entry) -> list[str]:
    """The methods an entry runs: a figure's own list, or every method its table's labels name, in order."""
    if entry.methods or not entry.numbers:
        return list(entry.methods)
    t = load_numbers(entry.numbers)
    out: list[str] = []
    for r in t.rows:
        for c in t.columns:
            dims = cell_dims(entry, t, r, c)
            m = method_of(dims) if dims else None
            if m and m not in out:
                out.append(m)
    return out

"""Rendering what `paper run` produced: the printed rows of a compared table (for each of the paper's rows, our
line, the paper's line and the difference), and the files under OUT/tables/: <name>.md (Markdown), <name>.csv
(one line per cell: ours, paper, difference; for a figure, its rows) and, written by the callers, <name>.json."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..io import write_csv
from .compare import ComparedTable


@dataclass
class PaperResult:
    """What `paper run` produced: the printed text, the JSON object, and the files written."""

    text: str
    data: dict
    files: list[Path] = field(default_factory=list)


def slug(name: str) -> str:
    """The file stem of an entry's outputs: "clipfit:table1" -> "clipfit_table1"."""
    return name.replace(":", "_")


def fmt_value(x: float | str, metric: str) -> str:
    if isinstance(x, str):
        return x
    if metric in ("params", "count"):
        return f"{round(x):,}"
    if metric == "reg":
        return f"{x:.2g}"
    if metric == "time":
        return f"{x:.3g}ms"
    return f"{x:.2f}"


def printed_rows(table: ComparedTable) -> list[list[str]]:
    """The printed rows: for each of the paper's rows, our line, the paper's line and the difference."""
    out = []
    blank = [""] * len(table.label_names)
    for r in table.rows:
        out.append(list(r.printed) + (["ours"] if table.has_paper else [])
                   + [fmt_value(c.ours, c.metric) for c in r.cells.values()])
        if table.has_paper:
            out.append(blank + ["paper"] + [c.paper for c in r.cells.values()])
            out.append(blank + ["diff"] + ["" if c.diff is None else f"{c.diff:+,.0f}" if c.metric == "count"
                                           else f"{c.diff:+.2f}" for c in r.cells.values()])
    return out


def printed_header(table: ComparedTable) -> list[str]:
    return list(table.label_names) + ([""] if table.has_paper else []) + list(table.columns)


def markdown(title: str, header: list[str], rows: list[list[str]], notes: Sequence[str]) -> str:
    def esc(x: str) -> str:
        return str(x).replace("|", "\\|")

    lines = [f"**{esc(title)}**", "", "| " + " | ".join(map(esc, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines + ([""] + [f"- {esc(n)}" for n in notes] if notes else [])) + "\n"


def cells_json(table: ComparedTable) -> list[dict]:
    """The JSON of a table's cells: ours, the paper's, the difference."""
    return [{"labels": list(r.labels), "cells": {
        c: {"ours": cell.ours, "paper": cell.paper, "paper_value": cell.paper_value, "diff": cell.diff}
        for c, cell in r.cells.items()}} for r in table.rows]


def cells_csv(name: str, table: ComparedTable) -> str:
    """One line per cell: the entry, the row's labels, the column, ours, the paper's, the difference."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["entry", *table.label_names, "column", "ours", "paper", "diff"])
    for r in table.rows:
        for c, cell in r.cells.items():
            ours = cell.ours if isinstance(cell.ours, str) else repr(cell.ours)
            w.writerow([name, *r.labels, c, ours, cell.paper, "" if cell.diff is None else repr(cell.diff)])
    return buf.getvalue()


def write_compared(tables: Path, name: str, title: str, table: ComparedTable, notes: Sequence[str]) -> list[Path]:
    """tables/<name>.md and .csv of a table laid out beside the paper's."""
    tables.mkdir(parents=True, exist_ok=True)
    base = tables / slug(name)
    md, csv_file = base.with_suffix(".md"), base.with_suffix(".csv")
    md.write_text(markdown(title, printed_header(table), printed_rows(table), notes), encoding="utf-8")
    csv_file.write_text(cells_csv(name, table), encoding="utf-8")
    return [md, csv_file]


def write_rows(tables: Path, name: str, title: str, header: list[str], rows: list[list[str]],
               notes: Sequence[str]) -> list[Path]:
    """tables/<name>.md and .csv of a figure's rows (no paper's numbers beside them)."""
    md = tables / f"{slug(name)}.md"
    md.write_text(markdown(title, header, rows, notes), encoding="utf-8")
    return [md, write_csv(tables / f"{slug(name)}.csv", header, rows)]

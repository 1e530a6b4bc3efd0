"""Entries that train nothing: CLIPFit's Table 8 (each dataset's classes, split sizes and prompt) and the LayerNorm
paper's Figure 2 (each method's trainable parameters on ViT-B/16), ours beside the paper's, written as a table is.

Table 8: our classes and sizes are those of the datasets found under `--root` (`clipfit datasets check`; a dataset
not there is "missing"), our prompt is the reader's template, known without the data. Figure 2: our counts on a
random initialisation of ViT-B/16 (`clipfit params`, no download); the linear probe's is per class, as printed.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import api
from ..data.catalogue import DATASETS, expand_datasets
from ..data.check import check
from ..io import write_json
from ..protocols.results import render
from .compare import MISSING, compare
from .entries import DATASET_LABELS, Entry
from .numbers import load_numbers
from .render import PaperResult, cells_json, printed_header, printed_rows, write_compared

STATIC_KINDS = ("datasets", "params")  # the protocols of entries that train nothing
PROMPT = "Hand-crafted prompt"  # CLIPFit Table 8's column


def _paper_prompt(template: str | None) -> str | None:
    """A template as the paper prints it, "[CLASS]" where the class name goes."""
    return template.replace("{}", "[CLASS]") if template else None


def dataset_values(entry: Entry, root: str | None) -> tuple[Callable[[dict], Any], list[str]]:
    """(value of a cell, notes): our classes and split sizes from the datasets under `root`, our prompts."""
    names = expand_datasets(entry.call.args["datasets"])
    found = {f.name: f for f in check(names, root)} if root else {}

    def value(dims: dict) -> Any:
        d, stat = dims["dataset"], dims["stat"]
        if stat == "template":
            return _paper_prompt(DATASETS.get(d).template)
        f = found.get(d)
        if f is None or f.status != "found":
            return MISSING
        return float(f.classes if stat == "classes" else f.sizes[stat])

    differ = [r.labels[0] for r in load_numbers(entry.numbers).rows
              if value({"dataset": DATASET_LABELS[r.labels[0]], "stat": "template"}) != r.cells[PROMPT].text]
    notes = [f"ours: the datasets found under {root} (`clipfit datasets check`), our readers' prompts" if root else
             "ours: our readers' prompts; give --root for the classes and sizes of the datasets there",
             "prompts: " + (f"ours differ from the paper's for {', '.join(differ)}" if differ else
                            "ours are the paper's, every one")]
    return value, notes


def param_values(entry: Entry) -> tuple[Callable[[dict], Any], list[str]]:
    """(value of a cell, notes): trainable parameters of each method on the entry's architecture."""
    arch = entry.call.args["arch"]

    def value(dims: dict) -> Any:
        m = dims["method"]
        one, two = (api.params(m, arch, classes=c)["trainable"] for c in (1, 2))
        if one == two:
            return float(one)
        per, rest = two - one, 2 * one - two  # grows with the classes (a linear probe): per class, as printed
        return f"{per} · (# classes)" + (f" + {rest}" if rest else "")

    return value, [f"ours: `clipfit params METHOD --arch {arch}` (a random initialisation, no download)"]


class ValuesWithoutRuns:
    """Our side of a table whose cells need no run (`compare.CellValues`): a function of a cell's dimensions."""

    def __init__(self, fn: Callable[[dict], Any]):
        self.get = fn


def run_static(entry: Entry, out: Path, root: str | None, dry_run: bool) -> PaperResult:
    """The entry beside the paper's; files in OUT/tables/ as every table (none for a dry run)."""
    value, notes = dataset_values(entry, root) if entry.call.protocol == "datasets" else param_values(entry)
    table = compare(entry, ValuesWithoutRuns(value))
    title = entry.caption
    notes = [*notes, "each row: our number, the paper's, and ours minus the paper's", *entry.notes]
    text = render(title, printed_header(table), printed_rows(table), notes)
    data = {"name": entry.name, "paper": entry.paper, "label": entry.label, "title": title, "notes": notes,
            "root": root, "header": printed_header(table), "rows": cells_json(table)}
    if dry_run:
        return PaperResult(text, {**data, "dry_run": True})
    files = write_compared(out / "tables", entry.name, title, table, notes)
    files.append(out / "tables" / f"{files[0].stem}.json")
    data["files"] = [str(f) for f in files]
    write_json(files[-1], data)
    return PaperResult(text, data, files)

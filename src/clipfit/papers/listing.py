"""`clipfit paper list` (`paper_list`, `list_text`) and what an entry needs: the datasets it reads
(`clipfit datasets check --paper NAME`, `datasets_check`)."""
from __future__ import annotations

from collections.abc import Sequence

from .. import api
from ..errors import ClipfitError
from .entries import ENTRIES, PAPERS, RECORD, Entry, get_entry, show_arg
from .labels import entry_methods
from .plan import entry_datasets
from .static import STATIC_KINDS


def describe_call(entry: Entry) -> str:
    """The runs an entry makes, in one line: its protocol call (or the variants it trains), a sweep's values."""
    if entry.call is None:
        return ""
    args = entry.call.args
    if entry.call.protocol == "train":
        return (f"train {entry.methods[0]} on {args['dataset']}, {args['shots']} shots, with record={RECORD}: "
                + ", ".join(f"{k}" + (f" ({' '.join(f'{a}={b}' for a, b in v.items())})" if v else "")
                            for k, v in args["variants"].items()))
    if entry.sweep:
        return (f"{entry.call.protocol} " + " ".join(f"{k}={show_arg(v)}" for k, v in args.items())
                + f" for each {entry.sweep[0]} in {show_arg(entry.sweep[1])}")

    return f"{entry.call.protocol} " + " ".join(f"{k}={show_arg(v)}" for k, v in args.items())


def paper_list() -> list[dict]:
    """Every table and figure of the three papers (`clipfit paper list`): name, title, the protocol call and methods
    it runs, its numbers file, or what it needs before it can be produced."""
    out = []
    for e in ENTRIES.values():
        out.append({"name": e.name, "paper": e.paper, "kind": e.kind, "label": e.label, "title": e.title,
                    "protocol": e.call.protocol if e.call else None,
                    "args": {k: list(v) if isinstance(v, tuple) else v
                             for k, v in (e.call.args if e.call else {}).items()},
                    "methods": entry_methods(e), "numbers": e.numbers, "needs": e.needs,
                    "runs": describe_call(e) + (f"; methods {','.join(entry_methods(e))}" if entry_methods(e) else "")
                    + ("; seeds 1,2,3" if e.call and e.call.protocol not in ("train", "timing", *STATIC_KINDS) else
                       "; seed 1" if e.call and e.call.protocol == "train" else "")})
    return out


def list_text(entries: list[dict]) -> str:
    """What `clipfit paper list` prints of `paper_list()`: two lines per entry."""
    lines = []
    for e in entries:
        head = f"{e['name']:20s} {PAPERS[e['paper']].short} {e['label']}: {e['title']}"
        lines.append(head)
        lines.append(" " * 21 + (f"needs {e['needs']}" if e["needs"] else f"runs: {e['runs']}"))
    return "\n".join(lines)


def paper_datasets(name: str) -> list[str]:
    """The datasets the entry `name` reads, or a one-line error when it reads none."""
    needed = entry_datasets(get_entry(name))
    if not needed:
        raise ClipfitError(f"--paper {name}: that entry reads no dataset")
    return needed


def datasets_check(root: str, names: str | Sequence[str] | None = None, *, suite: str | None = None,
                   paper: str | None = None, verify: bool = False, progress: bool = False) -> api.DatasetsCheck:
    """`clipfit.datasets_check`: `clipfit.api.datasets_check` (which datasets are under `root`: `names`, a `suite`,
    by default every dataset read from --root), and after those the datasets of a `paper` table or figure (e.g.
    "clipfit:table1")."""
    if paper is not None:
        names, suite = [*api.dataset_names(names, suite), *paper_datasets(paper)], None
    return api.datasets_check(root, names, suite=suite, verify=verify, progress=progress)

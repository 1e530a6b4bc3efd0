"""The paper's table of a protocol's results.json: which layout prints which protocol. A new protocol's module adds
its layout here."""
from __future__ import annotations

from collections.abc import Callable

from ..errors import ClipfitError
from .episodic import episodic_table
from .grid import base2new_table, fewshot_table
from .regimes import regimes_table
from .transfer import transfer_table

LAYOUTS: dict[str, Callable[[dict], str]] = {
    "fewshot": fewshot_table,
    "base2new": base2new_table,
    "crossdataset": transfer_table,
    "domainshift": transfer_table,
    "regimes": regimes_table,
    "episodic": episodic_table,
}


def format_table(summary: dict) -> str:
    """The paper's table for a protocol's results.json (from it alone: a finished grid's table can be printed again)."""
    try:
        layout = LAYOUTS[summary["protocol"]]
    except KeyError:
        raise ClipfitError(f"no table layout for protocol {summary.get('protocol')!r}") from None
    return layout(summary)

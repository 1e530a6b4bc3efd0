"""clipfit's version: the installed package's metadata (pyproject.toml's `version`, its one source)."""
from __future__ import annotations

import argparse
import functools
import re
from pathlib import Path


@functools.cache
def version() -> str:
    """The installed clipfit's version; in a checkout that is not installed (src/ on the path), pyproject.toml's."""
    from importlib import metadata  # here, not at the top: it takes longer to import than `clipfit --help` runs

    try:
        return metadata.version("clipfit")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        found = re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.M) if pyproject.is_file() else None
        return found.group(1) if found else "unknown"


class VersionAction(argparse.Action):
    """argparse's `--version` for `clipfit`, the version read only when asked (reading it takes longer than a start)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **_):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show program's version number and exit")

    def __call__(self, parser, *_):
        print(f"clipfit {version()}")
        parser.exit()

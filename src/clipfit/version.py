"""clipfit's version: the installed package's metadata (pyproject.toml's `version`, its one source)."""
from __future__ import annotations

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

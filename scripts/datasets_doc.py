"""Write docs/datasets.md's table of where every dataset read from --root comes from (between <!-- SOURCES --> and
<!-- /SOURCES -->) from `clipfit.data.sources.SOURCES`, the table the readers and `clipfit datasets check` use.
Usage: python scripts/datasets_doc.py [--check]   (--check: exit 1 when the docs are stale, write nothing)"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from clipfit.data.sources import markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    block = "<!-- SOURCES -->\n" + markdown() + "<!-- /SOURCES -->"
    new, n = re.subn(r"<!-- SOURCES -->.*?<!-- /SOURCES -->", lambda m: block, text, count=1, flags=re.S)
    if n != 1:
        print(f"{DOC} has no <!-- SOURCES --> ... <!-- /SOURCES --> block", file=sys.stderr)
        return 1
    if "--check" in sys.argv[1:]:
        if new != text:
            print(f"{DOC} is stale: run python scripts/datasets_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

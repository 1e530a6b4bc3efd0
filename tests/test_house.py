"""The house's check (scripts/check_house.py): each rule it enforces is seen on a small package written here, and the
real package passes it."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_house.py"


@pytest.fixture(scope="module")
def house():
    spec = importlib.util.spec_from_file_location("check_house", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package `clipfit` under tmp_path/src with these modules (path -> source); returns the src folder."""
    src = tmp_path / "src"
    for rel in ["__init__.py", *files]:
        p = src / "clipfit" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.parent != src / "clipfit":
            (p.parent / "__init__.py").touch()
        p.write_text(textwrap.dedent(files.get(rel, "")))
    return src


def lines(house, src: Path) -> list[str]:
    return [text for _, text in house.findings(src)]


def test_a_clean_package_has_no_finding(house, tmp_path):
    src = package(tmp_path, {"errors.py": "", "engine/loop.py": "from ..errors import x\n",
                             "api.py": "from .engine import loop\n"})
    assert lines(house, src) == []


def test_a_cycle_of_module_level_imports_is_named_with_its_imports(house, tmp_path):
    src = package(tmp_path, {"engine/a.py": "from .b import x\n", "engine/b.py": "from . import c\n",
                             "engine/c.py": "import clipfit.engine.a\n"})
    (found,) = lines(house, src)
    assert found.startswith("import cycle at run time among clipfit.engine.a, clipfit.engine.b, clipfit.engine.c")
    assert "clipfit.engine.b -> clipfit.engine.c (" in found and "/engine/c.py:1)" in found


def test_an_import_inside_a_function_forms_a_cycle_and_one_for_type_checking_does_not(house, tmp_path):
    src = package(tmp_path, {
        "protocols/core.py": "from .grid import run\n",
        "protocols/grid.py": "def table():\n    from .core import fmt\n",
        "engine/rng.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .loop import Source\n",
        "engine/loop.py": "from .rng import capture\n",
    })
    (found,) = lines(house, src)
    assert "among clipfit.protocols.core, clipfit.protocols.grid" in found
    assert "clipfit.protocols.grid -> clipfit.protocols.core (" in found and "grid.py:2, in table)" in found


def test_an_upward_import_is_named_with_both_layers(house, tmp_path):
    src = package(tmp_path, {
        "data/types.py": "def f():\n    from ..api import train\n",  # inside a function: still upward
        "method/base.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..engine.run import RunSpec\n",
        "engine/run.py": "from .. import __version__\n",
        "api.py": "",
    })
    found = lines(house, src)
    assert len(found) == 3
    assert any(f.startswith("upward import: clipfit.data.types (layer 3 data) imports clipfit.api (layer 7 api) at ")
               and f.endswith("types.py:2, in f") for f in found)
    assert any(f.startswith("upward import (for type checking only): clipfit.method.base (layer 4 method) imports "
                            "clipfit.engine.run (layer 5 engine)") for f in found)
    assert any("clipfit.engine.run (layer 5 engine) imports clipfit (layer 9" in f for f in found)


def test_a_module_in_no_layer_is_named(house, tmp_path):
    (found,) = lines(house, package(tmp_path, {"gadgets/thing.py": ""}))
    assert found.startswith("clipfit.gadgets, clipfit.gadgets.thing: in no layer; add 'gadgets' to LAYERS")


def test_a_long_file_and_a_long_function_are_named_with_their_size(house, tmp_path):
    n = house.MAX_FUNCTION_LINES
    long = "".join(f"        x{i} = {i}\n" for i in range(n))  # with its def line: one line over
    short = "".join(f"    y{i} = {i}\n" for i in range(n - 1))  # with its def line: at the limit
    src = package(tmp_path, {"engine/loop.py": f"class Loop:\n    def run(self):\n{long}\n\ndef fine():\n{short}",
                             "io.py": "\n" * (house.MAX_FILE_LINES + 1)})
    found = lines(house, src)
    assert len(found) == 2
    assert any(f.endswith(f"loop.py:2: function Loop.run has {house.MAX_FUNCTION_LINES + 1} lines, over "
                          f"{house.MAX_FUNCTION_LINES}") for f in found)
    assert any(f.endswith(f"io.py: {house.MAX_FILE_LINES + 1} lines, over {house.MAX_FILE_LINES}") for f in found)


def test_the_package_passes_the_house_check():
    """The check as CI runs it, on src/clipfit: no cycle, no upward import, no file or function too long."""
    res = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    assert res.stdout.strip().endswith("ok")

"""The fixed cost of a process: the `clipfit` command ends without unloading its modules but after everything a
normal exit does; settings' types are resolved once per class."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clipfit import config

ROOT = Path(__file__).resolve().parents[1]
# the `clipfit` script as pip writes it, with an exit handler of its own and (for --help, which ends in well under 3 s)
# a thread still running when the command ends
SCRIPT = """import atexit, sys, threading, time
atexit.register(lambda: print("exit handler ran"))
if sys.argv[1] == "--help":
    threading.Thread(target=lambda: (time.sleep(3), print("thread finished"))).start()
sys.argv = ["clipfit", *sys.argv[1:]]
from clipfit.cli import run
sys.exit(run())
"""


def _clipfit(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # output to a pipe is buffered, as usual
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300, env=env)


def test_the_command_exits_with_its_status_its_whole_output_and_its_exit_handlers():
    assert 'clipfit = "clipfit.cli:run"' in (ROOT / "pyproject.toml").read_text()  # the installed `clipfit` script
    from clipfit.cli import main

    listing = _clipfit("methods", "--details")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[-1] == "exit handler ran" and len(lines) > 100  # the whole listing, flushed before the end
    normal = subprocess.run([sys.executable, "-c", "import sys; from clipfit.cli import main; "
                             "sys.exit(main(['methods', '--details']))"], capture_output=True, text=True, timeout=300)
    assert listing.stdout == normal.stdout + "exit handler ran\n"  # as the interpreter's own exit prints it
    helped = _clipfit("--help")
    assert helped.returncode == 0 and helped.stdout.splitlines()[-2:] == ["thread finished", "exit handler ran"]
    mistake = _clipfit("train", "--dataset", "no_such_dataset", "--out", "/nonexistent/x")
    assert mistake.returncode == 2 and mistake.stderr.count("\n") == 1 and "no_such_dataset" in mistake.stderr
    usage = _clipfit("no-such-command")
    assert usage.returncode == 2 and "usage" in usage.stderr
    assert main(["datasets"]) == 0  # called in a process of its own (tests, notebooks), main returns


def test_settings_types_are_resolved_once_per_class(monkeypatch):
    calls = []
    real = config.typing.get_type_hints
    monkeypatch.setattr(config.typing, "get_type_hints", lambda c: calls.append(c) or real(c))
    config.field_types.cache_clear()
    for _ in range(3):
        config.parse_settings(["lr=0.1", "epochs=2"], [config.TrainConfig])
        config.apply_settings([config.TrainConfig()], {"lr": 0.2})
    assert calls == [config.TrainConfig]


def test_the_version_is_the_package_metadata_read_only_when_asked(tmp_path):
    """`clipfit --version` and `clipfit.__version__` say pyproject.toml's version (the installed metadata, or
    pyproject.toml itself in a checkout that is not installed); the other commands do not read it."""
    from importlib import metadata

    import clipfit
    from clipfit.version import version

    want = metadata.version("clipfit")
    assert 'version = "' + want + '"' in (ROOT / "pyproject.toml").read_text()
    assert clipfit.__version__ == want and _clipfit("--version").stdout.splitlines()[0] == f"clipfit {want}"
    code = ("import sys; from clipfit.cli import build_parser; build_parser(False).parse_args(['methods']); "
            "print('importlib.metadata' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    bare = ("import importlib.metadata as m, sys; sys.path.insert(0, {!r})\n"
            "def missing(name): raise m.PackageNotFoundError(name)\n"
            "m.version = missing\nfrom clipfit.version import version; print(version())").format(str(ROOT / "src"))
    assert subprocess.run([sys.executable, "-c", bare], capture_output=True, text=True).stdout.strip() == want
    assert version() == want

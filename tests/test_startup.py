"""The fixed cost of a process: the `clipfit` command ends without unloading its modules but after everything a
normal exit does; settings' types are resolved once per class."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from clipfit import config

ROOT = Path(__file__).resolve().parents[1]
# the `clipfit` script as pip writes it, with an exit handler of its own and a thread still running
SCRIPT = """import atexit, sys, threading, time
atexit.register(lambda: print("exit handler ran"))
threading.Thread(target=lambda: (time.sleep(0.5), print("thread finished"))).start()
sys.argv = ["clipfit", *sys.argv[1:]]
from clipfit.cli import run
sys.exit(run())
"""


def _clipfit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300)


def test_the_command_exits_with_its_status_its_whole_output_and_its_exit_handlers():
    assert 'clipfit = "clipfit.cli:run"' in (ROOT / "pyproject.toml").read_text()  # the installed `clipfit` script
    from clipfit.cli import main

    ok = _clipfit("methods", "--details")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[-2:] == ["thread finished", "exit handler ran"]  # threads joined, then the handlers, as sys.exit
    assert len(lines) > 100 and "clipfit" in ok.stdout  # the whole listing, flushed before the process ended
    mistake = _clipfit("train", "--dataset", "no_such_dataset", "--out", "/nonexistent/x")
    assert mistake.returncode == 2 and mistake.stderr.count("\n") == 1 and "no_such_dataset" in mistake.stderr
    usage = _clipfit("no-such-command")
    assert usage.returncode == 2 and "usage" in usage.stderr
    assert _clipfit("--help").returncode == 0
    assert main(["methods"]) == 0  # in a process of its own (tests, notebooks) main returns


def test_settings_types_are_resolved_once_per_class(monkeypatch):
    calls = []
    real = config.typing.get_type_hints
    monkeypatch.setattr(config.typing, "get_type_hints", lambda c: calls.append(c) or real(c))
    config.field_types.cache_clear()
    for _ in range(3):
        config.parse_settings(["lr=0.1", "epochs=2"], [config.TrainConfig])
        config.apply_settings([config.TrainConfig()], {"lr": 0.2})
    assert calls == [config.TrainConfig]

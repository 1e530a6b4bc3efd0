"""Start-up time of the command line, and how long an offline machine waits for its one line about a hub model.

Every figure is the wall time of a whole process (`python -m clipfit.cli ...`), the median of --runs runs.
With --before SRC, the same commands also run on another source tree (e.g. an older commit's `src`, from
`git archive COMMIT src | tar -x -C /tmp/old`), interleaved with this one's so both see the same machine load.

    python benchmarks/bench_startup.py                               # this checkout
    python benchmarks/bench_startup.py --before /tmp/old/src         # before / after
    python benchmarks/bench_startup.py --offline                     # also: hub id and bare name, no hub

--offline unsets HF_HUB_OFFLINE and needs a machine that cannot reach huggingface.co (the figure is the time to
the error line).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
COMMANDS = [["--help"], ["datasets"], ["params", "clipfit"]]


def offline_commands(out: str) -> list[list[str]]:
    return [["train", "--model", model, "--dataset", "synth", "--quiet", "--out", out]
            for model in ("openai/clip-vit-base-patch16", "ViT-B-16")]


def timed(src: str, args: list[str], offline: bool) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    if offline:
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("TRANSFORMERS_OFFLINE", None)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "clipfit.cli", *args], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - t, len(r.stderr.strip().splitlines())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--before", metavar="SRC", help="another source tree to time beside this one")
    ap.add_argument("--offline", action="store_true", help="also time the offline errors for a hub id and a bare name")
    args = ap.parse_args()
    trees = {"before": args.before, "after": SRC} if args.before else {"now": SRC}
    out = os.path.join(tempfile.mkdtemp(), "run")
    cases = [(c, False) for c in COMMANDS] + ([(c, True) for c in offline_commands(out)] if args.offline else [])
    times: dict[tuple, list[float]] = {}
    lines: dict[tuple, int] = {}
    for _ in range(args.runs):
        for c, offline in cases:
            for name, src in trees.items():
                t, n = timed(src, c, offline)
                times.setdefault((name, *c), []).append(t)
                lines[(name, *c)] = n
    print(f"median of {args.runs} whole-process runs; load average {os.getloadavg()[0]:.1f}")
    for c, offline in cases:
        label = ("offline: " + " ".join(c[:3])) if offline else "clipfit " + " ".join(c)
        cells = [f"{name} {statistics.median(times[(name, *c)]):5.2f} s" + (f" ({lines[(name, *c)]} stderr lines)"
                                                                            if offline else "")
                 for name in trees]
        print(f"{label:52s} " + "   ".join(cells))


if __name__ == "__main__":
    main()

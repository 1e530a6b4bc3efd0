"""Start-up time of the command line, and how long an offline machine waits for its one line about a hub model.

Every figure is the wall time of a whole process (`python -m clipfit.cli ...`), the median of --runs runs.
With --before SRC, the same commands also run on another source tree (e.g. an older commit's `src`, from
`git archive COMMIT src | tar -x -C /tmp/old`), interleaved with this one's so both see the same machine load.

    python benchmarks/bench_startup.py                               # this checkout
    python benchmarks/bench_startup.py --before /tmp/old/src         # before / after
    python benchmarks/bench_startup.py --offline                     # also: hub id and bare name, no hub
    python benchmarks/bench_startup.py --split --before /tmp/old/src # the fixed cost of a run, split

--offline unsets HF_HUB_OFFLINE and needs a machine that cannot reach huggingface.co (the figure is the time to
the error line).

--split times the fixed cost of `clipfit train` with epochs=0 (CoOp, 10 classes x 16 shots of 256-px JPEGs, the
embedded model, test included) and of `clipfit predict` on one image, and splits each process's wall time into
  imports   every module imported (torch, transformers and the rest vs clipfit's own): the top-level entries of
            `python -X importtime`, under which every run is made (it adds a little to each import)
  teardown  from the last exit handler to the end of the process (Python unloading its modules)
  ours      the rest: clipfit's own work (settings, data checking, model and tokenizer loading, ...) and the
            interpreter's start
Bytecode is cached (as an installed package has it), so clipfit's modules are not compiled again in every run.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
COMMANDS = [["--help"], ["datasets"], ["methods"], ["params", "clipfit"]]
END = "BENCH-END"
# the command as `python -m clipfit.cli` runs it, with the time of the last exit handler on stderr
CHILD = ("import atexit, runpy, sys, time\n"
         "atexit.register(lambda: (sys.stderr.write(f'\\n{END} {time.time()}\\n'), sys.stderr.flush()))\n"
         "sys.argv = ['clipfit', *sys.argv[1:]]\n"
         "runpy.run_module('clipfit.cli', run_name='__main__')\n").replace("{END}", END)


def offline_commands(out: str) -> list[list[str]]:
    return [["train", "--model", model, "--dataset", "synth", "--quiet", "--out", out]
            for model in ("openai/clip-vit-base-patch16", "ViT-B-16")]


def child_env(src: str, offline: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1",
           "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), "clipfit-bench-pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if offline:
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("TRANSFORMERS_OFFLINE", None)
    return env


def timed(src: str, args: list[str], offline: bool) -> tuple[float, int]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "clipfit.cli", *args], env=child_env(src, offline),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - t, len(r.stderr.strip().splitlines())


def split_once(src: str, args: list[str]) -> dict[str, float]:
    """The wall time of one run under `-X importtime` (the same run for every part, so the parts add up)."""
    t0 = time.time()
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", CHILD, *args], env=child_env(src),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.time() - t0
    if r.returncode != 0:
        raise SystemExit(f"failed: clipfit {' '.join(args)}\n{r.stderr[-2000:]}")
    end = float(re.findall(rf"{END} ([\d.]+)", r.stderr)[-1])
    ours_imports = third_party = 0.0
    for m in re.finditer(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", r.stderr, re.M):  # top level: one space
        if m[2].startswith("clipfit"):
            ours_imports += int(m[1]) / 1e6
        else:
            third_party += int(m[1]) / 1e6
    teardown = max(0.0, t0 + wall - end)
    return {"wall": wall, "imports (third-party)": third_party, "imports (clipfit)": ours_imports,
            "teardown": teardown, "ours": wall - third_party - ours_imports - teardown}


def split(trees: dict[str, str], runs: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_train import write_data

    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    data = write_data(work / "data", 10, 16, 256)
    run_dir = str(work / "run")
    train = ["train", "--dataset", f"imagefolder:{data}", "--method", "coop", "--shots", "16", "--threads", "1",
             "--set", "epochs=0", "--out", run_dir, "--overwrite", "--quiet"]
    predict = ["predict", run_dir, str(next((Path(data) / "test").rglob("*.jpg"))), "--threads", "1"]
    for src in trees.values():  # the run to predict with, and one warm-up each (file cache, bytecode)
        split_once(src, train)
        split_once(src, predict)
    results: dict[tuple, list[dict]] = {}
    for _ in range(runs):
        for label, args in (("train epochs=0", train), ("predict 1 image", predict)):
            for name, src in trees.items():
                results.setdefault((label, name), []).append(split_once(src, args))
    print(f"median of {runs} runs each (seconds); load average {os.getloadavg()[0]:.1f}")
    for (label, name), rs in results.items():
        cells = "  ".join(f"{k} {statistics.median(r[k] for r in rs):5.2f}" for k in rs[0])
        print(f"{label:16s} {name:7s} {cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--before", metavar="SRC", help="another source tree to time beside this one")
    ap.add_argument("--offline", action="store_true", help="also time the offline errors for a hub id and a bare name")
    ap.add_argument("--split", action="store_true", help="the fixed cost of train (epochs=0) and predict, split")
    args = ap.parse_args()
    trees = {"before": args.before, "after": SRC} if args.before else {"now": SRC}
    if args.split:
        return split(trees, args.runs)
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

"""Markdown table of a base2new grid (`clipfit base2new --out DIR`) with each method's trainable parameters and
training time beside its accuracies, as the README's results table: python scripts/results_table.py DIR"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main(out: str) -> None:
    out = Path(out)
    res = json.loads((out / "results.json").read_text())
    print("| method | trainable | train s | ms / image | base | new | HM |")
    print("|---|---:|---:|---:|---|---|---:|")
    for row in res["rows"]:
        runs = [out / row["dataset"] / f"{row['shots']}shot" / row["method"] / f"seed{s}" for s in row["seeds"]]
        ms = [json.loads((r / "metrics.json").read_text()) for r in runs if (r / "metrics.json").exists()]
        cfgs = [json.loads((r / "config.json").read_text()) for r in runs if (r / "config.json").exists()]
        params = ms[0]["trainable_parameters"] if ms else None
        secs = [m["train_seconds"] for m in ms if m.get("train_seconds")]
        per_image = []
        for m, c in zip(ms, cfgs):
            t, n = m.get("train_seconds"), len(json.loads((runs[0] / "items.json").read_text())["train"])
            tc = c["train_config"]
            seen = tc["iterations"] * tc["batch_size"] if tc.get("iterations") else tc["epochs"] * n
            if t and seen:
                per_image.append(1000 * t / seen)
        cell = {k: row["metrics"][k] for k in ("base", "new", "hm")}

        def fmt(k: str) -> str:
            v = cell[k]
            if v is None or v.get("mean") is None:
                return "n/a"
            return f"{v['mean']:.2f}" if k == "hm" else f"{v['mean']:.2f} ± {v['std']:.2f}"

        print(f"| {row['method']} | {params if params is not None else ''} | "
              f"{statistics.fmean(secs):.1f} | {statistics.fmean(per_image):.2f} | " if secs else
              f"| {row['method']} | {params if params is not None else 0} | 0 | 0 | ", end="")
        print(f"{fmt('base')} | {fmt('new')} | {fmt('hm')} |")


if __name__ == "__main__":
    main(sys.argv[1])

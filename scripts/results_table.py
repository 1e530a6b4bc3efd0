"""Markdown table of a base2new grid (`clipfit base2new --out DIR`) with each method's trainable parameters beside
its accuracies, as the README's results table: python scripts/results_table.py DIR"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out: str) -> None:
    out = Path(out)
    res = json.loads((out / "results.json").read_text())
    print("| method | trainable | base | new | HM |")
    print("|---|---:|---|---|---:|")
    for row in res["rows"]:
        run = out / row["dataset"] / f"{row['shots']}shot" / row["method"] / f"seed{row['seeds'][0]}"
        if not (run / "metrics.json").exists():
            run = out / row["dataset"] / row["method"]  # zero-shot runs once per dataset
        params = json.loads((run / "metrics.json").read_text()).get("trainable_parameters", 0)
        cells = []
        for k in ("base", "new", "hm"):
            v = row["metrics"][k]
            if v is None or v.get("mean") is None:
                cells.append("n/a")
            elif k == "hm" or len(v.get("values", [])) < 2:  # no spread over one run (zero-shot runs once)
                cells.append(f"{v['mean']:.2f}")
            else:
                cells.append(f"{v['mean']:.2f} ± {v['std']:.2f}")
        print(f"| {row['method']} | {params:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])

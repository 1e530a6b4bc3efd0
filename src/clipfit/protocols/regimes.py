"""The LayerNorm-tuning paper's two spectra ("How to Adapt Your Large-Scale Vision-and-Language Model", Sec. 4).

Amount of data: the low-data regime trains on 1, 2, 4, 8 and 16 shots, the high-data regime on 256 and 512
(CIFAR-100: 256 and 450); a dataset with fewer training images per class than a shot count sits that count out
(the paper leaves DTD and Flowers out of the high-data regime), listed in the tables as such. Similarity to the
pretraining data: zero-shot accuracy (CLIP's 80 templates) of at least 55% is high similarity. Its recipe applies:
validation of K images per class (Flowers min(K, 4)), K/10 and 50 epochs in the high-data regime, best epoch on
validation. Results are averaged over the shots of a regime and the seeds, then over the datasets of a quadrant.

Tables: the similarity split; the regime table of Figure 3 (methods x the four quadrants); the per-dataset
tables of Figure 4 (methods x datasets, for each regime); and, when the methods include a method X with 'X+ln'
and/or 'X@layernorm', Table 1 (None / Normal / As initialisation, low and high data).
"""
from __future__ import annotations

from typing import Any

from .. import recipes
from ..data.sources import SOURCES
from ..errors import ClipfitError
from .cells import Cell, GridArgs, check_datasets, headline_metric, run_cells
from .jobs import check_methods, make_job
from .results import fmt, mean_or_none, missing_note, render, summarise, value, write_results

REGIMES = ("low", "high")
QUADRANTS = (("low", "high"), ("low", "low"), ("high", "high"), ("high", "low"))  # (data, similarity), Figure 3's order
ZERO_SHOT = "zeroshot"


def regime_shots(dataset: str, regime: str, low: list[int] | None, high: list[int] | None) -> list[int]:
    """The shot counts of a regime for a dataset: the paper's unless given."""
    if regime == "low":
        return list(low or recipes.LAYERNORM_LOW_DATA_SHOTS)
    if high:
        return list(high)
    return list(recipes.LAYERNORM_HIGH_DATA_SHOTS_BY_DATASET.get(dataset, recipes.LAYERNORM_HIGH_DATA_SHOTS))


def run_regimes(args: GridArgs, datasets: list[str], regimes: list[str], low_shots: list[int] | None = None,
                high_shots: list[int] | None = None) -> dict:
    check_methods(args.methods, args.base.settings, args.base.model)
    bad = [r for r in regimes if r not in REGIMES]
    if bad or not regimes:
        raise ClipfitError(f"--regimes {','.join(regimes)}: choose from low, high")
    for name, ks, ok in (("low", low_shots, lambda k: 1 <= k <= max(recipes.LAYERNORM_LOW_DATA_SHOTS)),
                         ("high", high_shots, lambda k: k > max(recipes.LAYERNORM_LOW_DATA_SHOTS))):
        if ks and not all(ok(k) for k in ks):
            raise ClipfitError(f"--{name}-shots {ks}: the low-data regime is 1 to 16 shots, the high-data one more")
    tasks, missing = check_datasets(datasets, args.base.root, args.skip_missing, dry_run=args.dry_run)
    primary = {d: headline_metric(t) for d, t in tasks.items()}
    shots: dict[str, dict[str, list[int]]] = {}
    excluded: dict[str, str] = {}
    cells = []
    for d, task in tasks.items():
        counts: dict[int, int] = {}
        for it in task.train:
            counts[it.label] = counts.get(it.label, 0) + 1
        fewest = min(counts.values()) if counts else (published_per_class(d) if d in missing else 0)
        shots[d] = {}
        for regime in regimes:
            usable = []
            for k in regime_shots(d, regime, low_shots, high_shots):
                if k > fewest:
                    excluded[f"{d}/{k}"] = f"{d} has {fewest} training images in its smallest class, fewer than {k}"
                else:
                    usable.append(k)
            shots[d][regime] = usable
        first = min((k for ks in shots[d].values() for k in ks), default=1)
        # zero-shot accuracy decides the similarity regime, whether or not zero-shot is one of the methods
        cells.append(Cell({"dataset": d, "shots": 0, "method": ZERO_SHOT, "role": "similarity"}, 1,
                          make_job(args.base, args.out, d, ZERO_SHOT, first, 1, "regimes", "all")))
        for regime in regimes:
            for k in shots[d][regime]:
                for method in args.methods:
                    for seed in args.seeds:
                        job = make_job(args.base, args.out, d, method, k, seed, "regimes", "all")
                        cells.append(Cell({"dataset": d, "shots": k, "method": method}, seed, job))

    def values(c: Cell, m: dict) -> dict[str, Any]:
        res = m["test"]["all"]
        if c.labels.get("role") == "similarity":
            return {"accuracy": res["accuracy"]}
        metric = primary[c.labels["dataset"]]
        return {metric: res[metric], **{k: v for k, v in res.items() if k not in (metric, "n")}}

    rows = summarise(cells, run_cells(cells, values, args.progress, args.echo, args.executor))
    similarity = {}
    for d in tasks:
        zs = value(rows, "accuracy", dataset=d, role="similarity")
        similarity[d] = {"zero_shot_accuracy": zs,
                         "similarity": "high" if zs >= recipes.LAYERNORM_SIMILARITY_THRESHOLD else "low"}
    rows = [r for r in rows if r.get("role") != "similarity"]
    summary = {**args.header("regimes"), "datasets": datasets, "regimes": regimes, "shots": shots,
               "missing": missing, "excluded": excluded, "primary_metric": primary, "similarity": similarity,
               "threshold": recipes.LAYERNORM_SIMILARITY_THRESHOLD, "rows": rows}
    return write_results(args.out, summary)


def published_per_class(dataset: str) -> int:
    """Training images per class of a dataset that is not there (a dry run), from its published sizes."""
    s = SOURCES.get(dataset)
    return s.sizes[0] // s.classes if s else 0


def dataset_mean(s: dict, method: str, dataset: str, regime: str) -> float | None:
    """A method's mean over a regime's shot counts (each the mean over seeds) on one dataset; None when the dataset
    sits the regime out."""
    ks = s["shots"].get(dataset, {}).get(regime, [])
    if not ks:
        return None
    return mean_or_none(value(s["rows"], s["primary_metric"][dataset], dataset=dataset, shots=k, method=method)
                        for k in ks)


def regime_datasets(s: dict, regime: str, similarity: str | None = None) -> list[str]:
    return [d for d in s["datasets"] if d in s["similarity"] and s["shots"][d].get(regime)
            and (similarity is None or s["similarity"][d]["similarity"] == similarity)]


def regime_mean(s: dict, method: str, regime: str, similarity: str | None = None) -> float | None:
    ds = regime_datasets(s, regime, similarity)
    return mean_or_none(dataset_mean(s, method, d, regime) for d in ds) if ds else None


def families(methods: list[str]) -> list[str]:
    """Base methods X of Table 1: X is in the grid together with X+ln and/or X@layernorm."""
    return [m for m in methods if "@" not in m and "+" not in m and m != "layernorm"
            and (f"{m}+ln" in methods or f"{m}@layernorm" in methods)]


def regimes_table(s: dict) -> str:
    seeds = " ".join(map(str, s["seeds"]))
    notes = missing_note(s["missing"]) + [f"sits out: {k} ({why})" for k, why in s["excluded"].items()]
    out = []
    body = [[d, fmt(v["zero_shot_accuracy"]), v["similarity"]] for d, v in s["similarity"].items()]
    out.append(render(f"similarity to the pretraining data: zero-shot accuracy (80 templates) >= {s['threshold']:g}% "
                      "is high", ["dataset", "zero-shot", "similarity"], body))
    quads = [q for q in QUADRANTS if q[0] in s["regimes"]]
    body = [[m] + [fmt(regime_mean(s, m, data, sim)) for data, sim in quads] for m in s["methods"]]
    members = [f"{data} data, {sim} similarity: " + (", ".join(regime_datasets(s, data, sim)) or "no dataset")
               for data, sim in quads]
    out.append(render(f"regimes (Figure 3 layout; seeds {seeds}; test %, mean over shots, seeds, then datasets)",
                      ["method"] + [f"{data} data / {sim} sim." for data, sim in quads], body, members + notes))
    for regime in s["regimes"]:
        ds = regime_datasets(s, regime)
        tuned = [m for m in s["methods"] if m != ZERO_SHOT] or s["methods"]
        order = sorted(ds, key=lambda d: (mean_or_none(dataset_mean(s, m, d, regime) for m in tuned) or 0.0))
        body = [[m] + [fmt(dataset_mean(s, m, d, regime)) for d in order] for m in s["methods"]]
        ks = sorted({k for d in ds for k in s["shots"][d][regime]})
        tags = {d: "" if s["primary_metric"][d] == "accuracy" else f" ({s['primary_metric'][d]})" for d in ds}
        out.append(render(f"{regime}-data regime by dataset (Figure 4 layout; shots {' '.join(map(str, ks))}; mean "
                          "over shots and seeds; datasets ordered by the fine-tuning methods' average)",
                          ["method"] + [d + tags[d] for d in order], body))
    fam = families(s["methods"])
    if fam:
        cols = [(r, kind) for r in s["regimes"] for kind in ("", "+ln", "@layernorm")]
        body = [[m] + [fmt(regime_mean(s, m + kind, r)) if m + kind in s["methods"] else "" for r, kind in cols]
                for m in fam]
        names = {"": "None", "+ln": "Normal", "@layernorm": "As init."}
        out.append(render("LayerNorm tuning combined with each method (Table 1 layout; mean over datasets)",
                          ["method"] + [f"{r}: {names[k]}" for r, k in cols], body))
    return "\n\n".join(out)


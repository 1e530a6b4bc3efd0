"""`clipfit paper`: the papers' numbers (each file checked against the sums and averages the paper prints), the
registry (every required table and figure, every printed label resolved to a run of ours), our side of a table
computed as the paper computes it, and `paper run` / `--dry-run` end to end on a tiny model and synthetic stand-ins."""
from __future__ import annotations

import csv
import json
import statistics
from importlib import resources

import pytest

from clipfit.cli import main
from clipfit.method import METHODS
from clipfit.papers.compare import ValuesFromResults, compare
from clipfit.papers.entries import AVERAGE, ENTRIES
from clipfit.papers.labels import entry_methods, unresolved
from clipfit.papers.numbers import Numbers, load_numbers, numbers_files, parse_cell, read_numbers
from clipfit.papers.plan import make_plan
from clipfit.protocols.results import harmonic_mean

# -- the checks a numbers file must pass --------------------------------------------------------------------------


def _close(x: float, printed, inputs=()) -> bool:
    """`x`, computed from printed `inputs`, matches the `printed` cell within their rounding."""
    tol = printed.half_unit + sum(c.half_unit for c in inputs) / max(1, len(inputs)) + 1e-9
    return abs(x - printed.value) <= tol


def _close_hm(b, n, h) -> bool:
    return abs(harmonic_mean(b.value, n.value) - h.value) <= b.half_unit + n.half_unit + h.half_unit + 1e-9


def _datasets(t: Numbers, avg: str) -> list[str]:
    return list(dict.fromkeys(r.labels[0] for r in t.rows if r.labels[0] != avg))


def block_checks(t: Numbers, avg: str, h: str) -> set[str]:
    """Tables with a (dataset, metric) block per dataset, methods as columns (CLIPFit Tables 1, 11, 12): the
    Average block's Base and New are the means over the datasets; every block's H is the HM of its Base and New."""
    failed = set()
    ds = _datasets(t, avg)
    for c in t.columns:
        for metric in ("Base", "New"):
            cells = [t.row(d, metric).cells[c] for d in ds]
            if not _close(statistics.fmean(x.value for x in cells), t.row(avg, metric).cells[c], cells):
                failed.add(f"mean {metric} {c}")
        for d in [avg, *ds]:
            if not _close_hm(t.row(d, "Base").cells[c], t.row(d, "New").cells[c], t.row(d, h).cells[c]):
                failed.add(f"hm {d} {c}")
    return failed


def column_mean_checks(t: Numbers, avg: str, over: list[str]) -> set[str]:
    """Tables with an average column: each row's average is the mean of the columns `over`."""
    failed = set()
    for r in t.rows:
        cells = [r.cells[c] for c in over]
        if not _close(statistics.fmean(x.value for x in cells), r.cells[avg], cells):
            failed.add(f"mean {' '.join(r.labels)}")
    return failed


def hm_column_checks(t: Numbers, base="Base", new="New", h="H") -> set[str]:
    return {f"hm {' '.join(r.labels)}" for r in t.rows if not _close_hm(r.cells[base], r.cells[new], r.cells[h])}


def same_checks(t: Numbers, other: Numbers, pairs) -> set[str]:
    """Cells printed in two tables (the same runs, or numbers taken from the same source) are equal."""
    failed = set()
    for a, b, c, c2 in pairs:
        x, y = t.row(*a).cells[c], other.row(*b).cells[c2]
        if abs(x.value - y.value) > max(x.half_unit, y.half_unit) + 1e-9:  # "70.20" is "70.2"
            failed.add(f"same as {other.table} {' '.join(a)} {c}")
    return failed


B2N_AVG = {"Base": "Base", "New": "New"}
CLIPFIT_T1 = "clipfit_table1.csv"
COOP11 = ["ImageNet", "Caltech101", "OxfordPets", "S.C.", "Flowers", "Food101", "F.A.", "Sun397", "DTD", "EuroSAT",
          "UCF101"]


def checks(file: str) -> set[str]:
    """The ids of the checks `file` fails."""
    t = load_numbers(file)
    t1 = load_numbers(CLIPFIT_T1)
    if file == CLIPFIT_T1:
        return block_checks(t, "Average", "HM")
    if file in ("clipfit_table11.csv", "clipfit_table12.csv"):
        return block_checks(t, "AVG", "H")
    if file == "clipfit_table2.csv":  # Table 10's AVG column, by shots
        t10 = load_numbers("clipfit_table10.csv")
        names = {"CoOP": "CoOp", "Tip-adapter": "TIP-adapter"}
        return same_checks(t, t10, [((m,), (k, names.get(m, m)), k, "AVG") for m in (r.labels[0] for r in t.rows)
                                    for k in t.columns])
    if file == "clipfit_table10.csv":
        return column_mean_checks(t, "AVG", COOP11)
    if file in ("clipfit_table9.csv", "llu_table2.csv"):  # average of the targets
        failed = column_mean_checks(t, "Average", list(t.columns[1:-1]))
        if file == "llu_table2.csv":  # CoOp and CoCoOp as CLIPFit Table 9 prints them (both from CoCoOp's paper)
            t9 = load_numbers("clipfit_table9.csv")
            failed |= same_checks(t, t9, [((m,), (m,), c, c9) for m in ("CoOp", "CoCoOp")
                                          for c, c9 in zip(t.columns, t9.columns)])
        return failed
    if file == "clipfit_table3.csv":  # average of the source and the targets
        return column_mean_checks(t, "Average", ["ImageNet", "-V2", "-Sketch"])
    if file == "clipfit_table4.csv":  # H, the printed changes, and the rows Table 1 also prints
        failed = hm_column_checks(t)
        rows = list(t.rows)
        for above, r in zip(rows, rows[1:]):
            for c, cell in r.cells.items():
                if cell.delta is not None and not _close(cell.value - above.cells[c].value, parse_cell(
                        f"{cell.delta:+.2f}"), [cell, above.cells[c]]):
                    failed.add(f"change {r.labels[0]} {c}")
        failed |= same_checks(t, t1, [((m,), ("Average", metric), c, m1) for m, m1 in (
            ("CoOp", "CoOp"), ("KgCoOp", "KgCoOp"), ("CLIP-adapter", "Adapter"))
            for metric, c in (("Base", "Base"), ("New", "New"), ("HM", "H"))])
        return failed
    if file == "clipfit_table5.csv":
        return hm_column_checks(t)
    if file == "clipfit_table6.csv":  # the text's improvements (Sec. 4.4), and CLIPFit's row of Table 2
        failed = set()
        said = {"w/ KD loss": (2.35, 1.22, 0.09), "w/ LayerNorm": (1.89, 1.41, 1.51),
                "w/ KD loss + LayerNorm": (3.46, 2.46, 1.74)}
        base = t.row("Porjection Bias").cells
        for row, gains in said.items():
            for c, g in zip(t.columns, gains):
                if abs(t.value(row, c) - base[c].value - g) > 0.005 + 1e-9:
                    failed.add(f"text {row} {c}")
        t2 = load_numbers("clipfit_table2.csv")
        return failed | same_checks(t, t2, [(("w/ KD loss + LayerNorm",), ("CLIPFit",), c, c.removesuffix("-shot"))
                                            for c in t.columns])
    if file == "clipfit_table7.csv":  # Base/New/HM: Table 1's Average block
        return hm_column_checks(t, h="HM") | same_checks(t, t1, [((m,), ("Average", metric), metric, m)
                                                                  for m in ("CoOp", "CoCoOp", "KgCoOp", "MaPLe", "CLIPFit")
                                                                  for metric in ("Base", "New", "HM")])
    if file == "llu_table1.csv":
        avg = "(a) Average over 11 datasets"
        failed = set()
        ds = _datasets(t, avg)
        methods = list(dict.fromkeys(r.labels[1] for r in t.rows))
        for m in methods:
            for metric in ("Base", "New", "H"):  # LLU's Average H: the mean of the datasets' H
                cells = [t.row(d, m).cells[metric] for d in ds]
                if not _close(statistics.fmean(x.value for x in cells), t.row(avg, m).cells[metric], cells):
                    failed.add(f"mean {metric} {m}")
        failed |= hm_column_checks(t)
        names = {"(b) ImageNet": "ImageNet", "(c) Caltech101": "Caltech101", "(d) OxfordPets": "OxfordPets",
                 "(e) StanfordCars": "Stanford Cars", "(f) Flowers102": "Flowers102", "(g) Food101": "Food101",
                 "(h) FGVC Aircraft": "FGVC Aircraft", "(i) SUN397": "SUN397", "(j) DTD": "DTD",
                 "(k) EuroSAT": "EuroSAT", "(l) UCF101": "UCF101", avg: "Average"}
        return failed | same_checks(t, t1, [((d, m), (names[d], metric), c, m) for d in names
                                            for m in ("CLIP", "CoOp", "CoCoOp")
                                            for metric, c in (("Base", "Base"), ("New", "New"), ("HM", "H"))])
    if file == "llu_table3.csv":  # the columns CLIPFit Table 3 also prints (from CoCoOp's paper)
        t3 = load_numbers("clipfit_table3.csv")
        return same_checks(t, t3, [((m,), (m,), c, c3) for m in ("CLIP", "CoOp", "CoCoOp")
                                   for c, c3 in (("ImageNet", "ImageNet"), ("ImageNetV2", "-V2"),
                                                 ("ImageNet-Sketch", "-Sketch"))])
    if file == "llu_table4.csv":  # its Default and CLIP columns are Table 1's Average rows (Mean: the mean of H)
        t1l = load_numbers("llu_table1.csv")
        avg = "(a) Average over 11 datasets"
        return same_checks(t, t1l, [((metric,), (avg, m1), c, c1) for c, m1 in (
            ("CLIP", "CLIP"), ("Default", "LLU")) for metric, c1 in (("Base", "Base"), ("New", "New"), ("Mean", "H"))])
    if file == "layernorm_table1.csv":  # "the addition of LayerNorm tuning in either form provides a ... boost"
        return {f"boost {r.labels[0]} {c}" for r in t.rows for regime in ("Low", "High")
                for c in (f"{regime}-Data Regime / Normal", f"{regime}-Data Regime / As Initialization")
                if not r.cells[c].value > r.cells[f"{regime}-Data Regime / None"].value}
    if file == "layernorm_table2.csv":  # "close the gap from zero-shot CLIP significantly"
        return {f"gap {r.labels[0]} {c}" for r in t.rows[1:3] for c in t.columns
                if not r.cells[c].value > t.value("Zero-shot", c)}
    if file in ("layernorm_table3.csv", "layernorm_table4.csv"):  # "Linear Probe with LayerNorm ... performs the best"
        ours = [r for r in t.rows if r.labels[0] != "Best leaderboard result"]
        return {f"best {c}" for c in t.columns
                if max(ours, key=lambda r: r.cells[c].value).labels[0] != ours[-1].labels[0]}
    if file == "clipfit_table8.csv":  # the published sizes clipfit plans with (data.sources) are the paper's
        from clipfit.data.sources import SOURCES
        from clipfit.papers.entries import DATASET_LABELS

        failed = {f"prompt {r.labels[0]}" for r in t.rows if r.cells["Hand-crafted prompt"].text.count("[CLASS]") != 1}
        for r in t.rows:
            s = SOURCES[DATASET_LABELS[r.labels[0]]]
            for c, ours in zip(("Classes", "Train", "Val", "Test"), (s.classes, *s.sizes)):
                printed = r.cells[c]
                if printed.value is not None and printed.value != ours:
                    failed.add(f"size {r.labels[0]} {c}")
                if printed.text == "1.28M" and round(ours / 1e6, 2) != 1.28:
                    failed.add(f"size {r.labels[0]} {c}")
        return failed
    if file == "layernorm_figure2.csv":  # the architecture its text gives (Sec. 3, appendix A.3), ViT-B/16
        want = {"Prompt Tuning": 8 * 512,  # "a prompt of 8 512-dimensional vectors"
                "Layer Norm": (2 * 12 + 2) * 2 * 768 + (2 * 12 + 1) * 2 * 512,  # gains and biases, 768 / 512-dimensional
                "Adapter": 12 * (512 * 24 + 24 + 24 * 512 + 512)}  # bottleneck 24 after each text layer's FFN
        row = t.row("Parameters").cells
        failed = {f"count {m}" for m, n in want.items() if row[m].value != n}
        return failed | ({"count Linear Probe"} if row["Linear Probe"].text != "769 · (# classes)" else set())
    raise AssertionError(f"no checks for {file}")


@pytest.mark.parametrize("file", numbers_files())
def test_numbers_file_matches_the_sums_and_averages_the_paper_prints(file):
    """Every check the paper's own numbers fail is named in the file (`# known:`, with why); any other failure is a
    typo in the file."""
    t = load_numbers(file)
    assert t.rows and t.columns and t.meta["caption"]
    assert checks(file) == set(t.known), f"{file}: failing checks not declared known, or known ones that pass"


def test_a_typo_in_a_number_fails_its_check():
    text = resources.files("clipfit.papers").joinpath("numbers", "clipfit_table10.csv").read_text()
    assert "65.77,92.37" in text
    t = read_numbers(text.replace("65.77,92.37", "56.77,92.37"), "typo")
    orig = load_numbers("clipfit_table10.csv")
    assert column_mean_checks(t, "AVG", COOP11) - column_mean_checks(orig, "AVG", COOP11) == {"mean 1 CoOp"}


def test_cells_keep_their_printed_rounding_and_changes():
    c = parse_cell("82.96(+0.33)")
    assert (c.value, c.delta, c.half_unit) == (82.96, 0.33, 0.005)
    assert parse_cell("90.6").half_unit == 0.05
    assert parse_cell("1.95e-5").value == pytest.approx(1.95e-5)
    assert parse_cell("0.17M").value is None and parse_cell("0.17M").text == "0.17M"
    t = load_numbers(CLIPFIT_T1)
    assert t.row("Stanford Cars", "New").printed == ("", "New")  # printed once per block, filled down
    assert t.value(("Stanford Cars", "New"), "CoCoOp") == 68.87  # as printed, though its HM says otherwise


# -- the registry ---------------------------------------------------------------------------------------------------

REQUIRED = ([f"clipfit:table{i}" for i in range(1, 13)]
            + [f"clipfit:figure{i}" for i in (3, 4, 5, 6)]
            + [f"layernorm:table{i}" for i in (1, 2, 3, 4)] + [f"layernorm:figure{i}" for i in (2, 3, 4, 5, 7)]
            + [f"llu:table{i}" for i in (1, 2, 3, 4)])


def test_paper_list_names_every_required_table_and_figure_with_its_runs(capsys):
    assert main(["paper", "list", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)["entries"]}
    assert set(REQUIRED) <= set(entries)
    assert entries["clipfit:table1"]["protocol"] == "base2new" and "clipfit" in entries["clipfit:table1"]["methods"]
    assert entries["llu:table4"]["methods"][:3] == ["zeroshot", "llu", "llu:no_cluster"]
    assert entries["clipfit:figure3"]["runs"].startswith("train clipfit on dtd, 16 shots, with record=")
    assert "for each beta in" in entries["clipfit:figure6"]["runs"]
    assert main(["paper", "list"]) == 0
    text = capsys.readouterr().out
    assert "clipfit:table10" in text and "runs: fewshot datasets=coop11 shots=1,2,4,8,16" in text


@pytest.mark.parametrize("name", list(ENTRIES))
def test_every_printed_label_is_a_run_of_ours_or_declared_paper_only(name):
    e = ENTRIES[name]
    assert unresolved(e) == []
    for m in entry_methods(e):
        for part in m.split("@"):
            assert part in METHODS, m
    assert bool(e.needs) != bool(e.call), name  # runnable, or says what it needs
    assert bool(e.numbers) != bool(e.figure) or e.needs, name


def test_every_numbers_file_belongs_to_an_entry_of_its_paper_and_table():
    used = {e.numbers: e for e in ENTRIES.values() if e.numbers}
    assert set(used) == set(numbers_files())
    for f, e in used.items():
        t = load_numbers(f)
        assert (t.paper, t.table) == (e.paper, e.label)


def test_an_entry_that_needs_the_analyses_module_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    monkeypatch.setitem(ENTRIES, "clipfit:table2", replace(ENTRIES["clipfit:table2"], call=None,
                                                          needs="the analyses module (something)"))
    assert main(["paper", "run", "clipfit:table2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "needs the analyses module" in err
    assert main(["paper", "run", "clipfit:table13", "--out", str(tmp_path)]) == 2
    assert "clipfit paper list" in capsys.readouterr().err


# -- our side, computed as the paper computes it --------------------------------------------------------------------


def _b2n_summary(values: dict[str, tuple[float, float]], method="clipfit") -> dict:
    rows = [{"dataset": d, "shots": 16, "method": method, "seeds": [1],
             "metrics": {"base": {"mean": b}, "new": {"mean": n}, "hm": {"mean": harmonic_mean(b, n)}}}
            for d, (b, n) in values.items()]
    return {"protocol": "base2new", "methods": [method], "seeds": [1], "shots": [16], "datasets": list(values),
            "missing": {}, "rows": rows}


def test_average_rows_follow_each_papers_convention_over_the_papers_datasets(tmp_path):
    """CoOp's (CLIPFit Table 1): HM of the average Base and New; LLU's: the mean of the datasets' HM. With stand-ins
    the average is over the paper's 11 datasets, ImageNet's stand-in once and synth_shift ten times."""
    summary = _b2n_summary({"synth_imagenet": (100.0, 90.0), "synth_shift": (50.0, 30.0)})
    base, new = (100 + 10 * 50) / 11, (90 + 10 * 30) / 11
    plan = make_plan(ENTRIES["clipfit:table1"], stand_ins=True)
    side = compare(ENTRIES["clipfit:table1"], ValuesFromResults(plan, summary, tmp_path))
    got = {r.labels: r.cells["CLIPFit"].ours for r in side.rows}
    assert got[("Average", "Base")] == pytest.approx(base)
    assert got[("Average", "HM")] == pytest.approx(2 * base * new / (base + new))
    assert got[("EuroSAT", "New")] == 30.0 and got[("ImageNet", "HM")] == pytest.approx(harmonic_mean(100, 90))
    assert side.rows[0].cells["CoOp"].ours == "not run"
    cell = side.rows[0].cells["CLIPFit"]
    assert cell.diff == pytest.approx(base - 83.72)

    summary = _b2n_summary({"synth_imagenet": (100.0, 90.0), "synth_shift": (50.0, 30.0)}, method="llu")
    plan = make_plan(ENTRIES["llu:table1"], stand_ins=True)
    side = compare(ENTRIES["llu:table1"], ValuesFromResults(plan, summary, tmp_path))
    avg = next(r for r in side.rows if r.labels == ("(a) Average over 11 datasets", "LLU"))
    assert avg.cells["H"].ours == pytest.approx((harmonic_mean(100, 90) + 10 * harmonic_mean(50, 30)) / 11)


def test_transfer_averages_include_the_source_only_where_the_paper_does(tmp_path):
    rows = [{"method": "clipfit", "seeds": [1], "metrics": {"synth_imagenet": {"mean": 90.0}, "synth_cast": {"mean": 60.0},
                                                              "synth_shift": {"mean": 30.0}}}]
    summary = {"protocol": "domainshift", "methods": ["clipfit"], "seeds": [1], "source": "synth_imagenet",
               "targets": ["synth_cast", "synth_shift"], "missing": {}, "rows": rows}
    plan = make_plan(ENTRIES["clipfit:table3"], stand_ins=True)
    assert (plan.args["source"], plan.args["targets"]) == ("synth_imagenet", ["synth_cast", "synth_shift"])
    side = compare(ENTRIES["clipfit:table3"], ValuesFromResults(plan, summary, tmp_path))
    clipfit = next(r for r in side.rows if r.labels == ("CLIPFit",))
    assert clipfit.cells["Average"].ours == pytest.approx(60.0)  # (90 + 60 + 30) / 3: source and targets
    summary = {**summary, "protocol": "crossdataset", "targets": ["synth_shift"],
               "rows": [{"method": "clipfit", "seeds": [1], "metrics": {"synth_imagenet": {"mean": 90.0},
                                                                        "synth_shift": {"mean": 30.0}}}]}
    plan = make_plan(ENTRIES["clipfit:table9"], stand_ins=True)
    side = compare(ENTRIES["clipfit:table9"], ValuesFromResults(plan, summary, tmp_path))
    clipfit = next(r for r in side.rows if r.labels == ("CLIPFit",))
    assert clipfit.cells["Average"].ours == pytest.approx(30.0)  # the targets only


def test_layernorm_table1_reads_each_combination_of_each_regime(tmp_path):
    """Row 'Linear Probe' x column 'Low-Data Regime / As Initialization' is linear_probe@layernorm averaged over the
    low-data shots, then over the datasets of that regime."""
    rows, acc = [], {}
    for i, m in enumerate(("linear_probe", "linear_probe+ln", "linear_probe@layernorm")):
        for d in ("synth", "synth_shift"):
            for k in (1, 4, 32):
                acc[m, d, k] = 10.0 * i + k + (50 if d == "synth" else 0)
                rows.append({"dataset": d, "shots": k, "method": m, "seeds": [1],
                             "metrics": {"accuracy": {"mean": acc[m, d, k]}}})
    summary = {"protocol": "regimes", "seeds": [1], "regimes": ["low", "high"],
               "datasets": ["synth", "synth_shift"], "missing": {}, "rows": rows,
               "shots": {d: {"low": [1, 4], "high": [32]} for d in ("synth", "synth_shift")},
               "primary_metric": {"synth": "accuracy", "synth_shift": "accuracy"},
               "similarity": {"synth": {"similarity": "high"}, "synth_shift": {"similarity": "low"}}}
    summary["methods"] = ["linear_probe", "linear_probe+ln", "linear_probe@layernorm"]
    entry = ENTRIES["layernorm:table1"]
    side = compare(entry, ValuesFromResults(make_plan(entry, stand_ins=True), summary, tmp_path))
    lp = next(r for r in side.rows if r.labels == ("Linear Probe",)).cells
    m = "linear_probe@layernorm"
    want = statistics.fmean(statistics.fmean(acc[m, d, k] for k in (1, 4)) for d in ("synth", "synth_shift"))
    assert lp["Low-Data Regime / As Initialization"].ours == pytest.approx(want)
    assert lp["High-Data Regime / Normal"].ours == pytest.approx(statistics.fmean(
        acc["linear_probe+ln", d, 32] for d in ("synth", "synth_shift")))
    assert next(r for r in side.rows if r.labels == ("Adapter",)).cells["High-Data Regime / None"].ours == "not run"


def test_the_papers_backbone_on_the_real_data_unless_stand_ins_or_a_model_are_asked_for(tiny_clip):
    e = ENTRIES["clipfit:table2"]
    plan = make_plan(e, root="/data")
    assert plan.stand_ins is None and plan.model == "openai/clip-vit-base-patch16" and "paper's backbone" in plan.model_why
    assert make_plan(e).stand_ins is None and make_plan(e).model == "openai/clip-vit-base-patch16"  # no root: no stand-ins
    plan = make_plan(e, stand_ins=True)
    assert plan.model == "clipfit/mini-clip" and plan.args["datasets"] == ["synth_imagenet", "synth_shift"]
    assert make_plan(e, model=tiny_clip, stand_ins=True).stand_ins and make_plan(e, model=tiny_clip).model_why == "--model"
    assert make_plan(ENTRIES["layernorm:table1"], stand_ins=True).args["high_shots"] == (32,)  # 64 images per class
    assert make_plan(e).average[0] == "imagenet" and AVERAGE not in make_plan(e).average
    # ImageNet's stand-in gets ImageNet's rules: CLIPFit's 10 epochs (CoOp's 50), as on ImageNet itself
    from clipfit.engine.run import RunSpec, resolve_configs

    for method, epochs in (("clipfit", 10), ("coop", 50)):
        spec = RunSpec(dataset=plan.args["datasets"][0], method=method, protocol="fewshot", shots=16)
        assert resolve_configs(spec)[1].epochs == epochs


# -- paper run, end to end ------------------------------------------------------------------------------------------

FAST = ["--set", "epochs=1", "--set", "batch_size=16", "--quiet"]


def test_paper_run_runs_resumes_and_prints_ours_beside_the_papers(tiny_clip, tmp_path, capsys):
    out = tmp_path / "paper"
    args = ["paper", "run", "clipfit:table3", "--model", tiny_clip, "--stand-ins", "--out", str(out),
            "--methods", "zeroshot,clipfit", "--seeds", "1", "--shots", "1", *FAST]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "CLIPFit Table 3" in text and "not comparable" in text and "synthetic stand-ins" in text
    for word in ("ours", "paper", "diff", "not run", "61.74"):
        assert word in text
    data = json.loads((out / "tables" / "clipfit_table3.json").read_text())
    proto = data["protocol"]
    assert proto["protocol"] == "domainshift" and proto["source"] == "synth_imagenet"
    cf = next(r for r in proto["rows"] if r["method"] == "clipfit")["metrics"]
    want = statistics.fmean(cf[d]["mean"] for d in ("synth_imagenet", "synth_cast", "synth_shift"))
    with open(out / "tables" / "clipfit_table3.csv") as f:
        cells = {(r["Method"], r["column"]): r for r in csv.DictReader(f)}
    assert float(cells[("CLIPFit", "Average")]["ours"]) == pytest.approx(want)
    assert float(cells[("CLIPFit", "Average")]["diff"]) == pytest.approx(want - 61.74)
    assert cells[("CoOp", "ImageNet")]["ours"] == "not run"
    assert "| CLIPFit |" in (out / "tables" / "clipfit_table3.md").read_text()
    run = out / "domainshift" / "synth_imagenet" / "1shot" / "clipfit" / "seed1" / "metrics.json"
    stamp = run.stat().st_mtime_ns
    assert main(args) == 0  # everything reused
    assert run.stat().st_mtime_ns == stamp
    capsys.readouterr()

    # the dry run lists the same runs, all finished, and trains nothing
    assert main([*args, "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {r["status"] for r in plan["runs"]} == {"finished"} and plan["estimated_seconds"] == 0


def test_dry_run_lists_the_runs_and_estimates_from_a_measured_step_without_training(tiny_clip, tmp_path, capsys):
    out = tmp_path / "dry"
    assert main(["paper", "run", "clipfit:table6", "--model", tiny_clip, "--stand-ins", "--out", str(out),
                 "--seeds", "1,2", "--shots", "1", "--dry-run", "--json", *FAST]) == 0
    plan = json.loads(capsys.readouterr().out)
    dirs = [r["dir"] for r in plan["runs"]]
    assert len(dirs) == 2 * 4 * 2  # 2 stand-in datasets x 4 configurations x 2 seeds
    assert all(r["status"] == "to train" and r["seconds"] > 0 for r in plan["runs"])
    assert {m["method"] for m in plan["measured"]} == {"clipfit:proj_bias", "clipfit:no_kd", "clipfit:no_ln", "clipfit"}
    assert all(m["step"] > 0 and m["forward"] >= 0 for m in plan["measured"]) and len(plan["measured"]) == 4
    weights = {r["method"]: r["settings"]["weights"] for r in plan["runs"]}  # few-shot: beta 2 (CLIPFit's recipe)
    assert weights == {"clipfit": {"β": 2.0}, "clipfit:no_kd": {"reg": "none"}, "clipfit:no_ln": {"β": 2.0},
                       "clipfit:proj_bias": {"reg": "none"}}
    assert not out.exists() or not any(out.rglob("config.json"))  # nothing trained, no run directory made
    assert main(["paper", "run", "clipfit:table6", "--model", tiny_clip, "--stand-ins", "--out", str(out),
                 "--seeds", "1", "--shots", "1", "--dry-run", *FAST]) == 0
    text = capsys.readouterr().out
    assert "to train" in text and "one measured step of its method" in text and "estimated" in text
    assert "synthetic stand-ins" in text and "not comparable" in text and "clipfit/mini-clip" not in text


def test_a_figure_is_drawn_from_the_protocols_results(tiny_clip, tmp_path, capsys):
    out = tmp_path / "fig"
    assert main(["paper", "run", "layernorm:figure3", "--model", tiny_clip, "--stand-ins", "--out", str(out),
                 "--methods", "zeroshot,layernorm", "--seeds", "1", "--low-shots", "1", "--high-shots", "20",
                 *FAST]) == 0
    text = capsys.readouterr().out
    assert "low data / high sim." in text and "high data / low sim." in text
    png = out / "figures" / "layernorm_figure3.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "tables" / "layernorm_figure3.json").read_text())
    zs = next(r for r in data["rows"] if r["labels"] == ["zeroshot"])["cells"]
    sim = data["protocol"]["similarity"]
    for level in ("low", "high"):  # zero-shot's bar: its accuracy averaged over the quadrant's datasets
        ds = [d for d, v in sim.items() if v["similarity"] == level]
        want = statistics.fmean(sim[d]["zero_shot_accuracy"] for d in ds) if ds else "n/a"
        assert zs[f"low data / {level} sim."]["ours"] == pytest.approx(want)


def test_options_a_protocol_does_not_take_are_refused(tmp_path, capsys):
    assert main(["paper", "run", "clipfit:table1", "--out", str(tmp_path), "--low-shots", "1"]) == 2
    assert "--low-shots" in capsys.readouterr().err
    assert main(["paper", "run", "clipfit:table1", "--out", str(tmp_path), "--methods", "llu"]) == 2
    assert "runs zeroshot, coop" in capsys.readouterr().err


# -- entries that train nothing -------------------------------------------------------------------------------------


def test_table8_puts_the_datasets_found_beside_the_papers_statistics_and_prompts(coop_root, tmp_path, capsys):
    assert main(["paper", "run", "clipfit:table8", "--root", str(coop_root), "--out", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cells = {r["labels"][0]: r["cells"] for r in data["rows"]}
    assert cells["OxfordPets"]["Classes"]["ours"] == 2 and cells["OxfordPets"]["Classes"]["diff"] == 2 - 37
    assert [cells["ImageNet"][c]["ours"] for c in ("Train", "Val", "Test")] == [6, 0, 6]  # the fixture's copies
    assert cells["FGVCAircraft"]["Test"]["ours"] == 2 and cells["DTD"]["Train"]["ours"] == "missing"
    assert cells["DTD"]["Hand-crafted prompt"] == {"ours": "[CLASS] texture.", "paper": "[CLASS] texture.",
                                                   "paper_value": None, "diff": None}
    assert "prompts: ours are the paper's, every one" in data["notes"]
    assert (tmp_path / "tables" / "clipfit_table8.md").exists() and (tmp_path / "tables" / "clipfit_table8.json").exists()
    assert main(["paper", "run", "clipfit:table8", "--out", str(tmp_path / "none")]) == 0  # no --root: prompts only
    text = capsys.readouterr().out
    assert "give --root for the classes and sizes" in text and "missing" in text


def test_layernorm_figure2_counts_every_method_as_the_paper_does(tmp_path, capsys):
    assert main(["paper", "run", "layernorm:figure2", "--out", str(tmp_path), "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)["rows"][0]["cells"]
    assert cells["Linear Probe"]["ours"] == cells["Linear Probe"]["paper"] == "769 · (# classes)"
    assert {m: c["diff"] for m, c in cells.items() if m != "Linear Probe"} == {
        "Prompt Tuning": 0, "Compacter": 0, "Layer Norm": 0, "Adapter": 0, "Full Fine-tuning": 0}
    assert cells["Full Fine-tuning"]["ours"] == 149_620_737

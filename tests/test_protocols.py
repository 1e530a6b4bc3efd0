"""The papers' protocols: their defaults (checkpoint kept, validation size, epochs, HM of means, templates, views)
and every protocol command end to end on datasets written here in their real on-disk layouts (no download)."""
from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
import torch
from PIL import Image

import clipfit
from clipfit import recipes
from clipfit.cli import main
from clipfit.config import TrainConfig
from clipfit.engine.loop import FeatureSource
from clipfit.engine.run import RunSpec, load_run, resolve_configs
from clipfit.errors import ClipfitError
from clipfit.protocols.classifier_baseline import Episodes, draw_episodes, episode_accuracies
from clipfit.protocols.grid import base2new_table, hm_of_means
from clipfit.protocols.jobs import check_same_run
from clipfit.protocols.regimes import regimes_table
from clipfit.protocols.results import harmonic_mean
from clipfit.recipes import Context

FAST = {"epochs": 2, "batch_size": 4, "lr": 0.05, "warmup_epochs": 0}
RGB = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def _png(path, rgb, rng, size=12):
    a = np.clip(np.array(rgb)[None, None] + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


@pytest.fixture(scope="module")
def coop_root(tmp_path_factory):
    """ImageNet and its variants, and EuroSAT, in CoOp's layout (DATASETS.md), over the classes red/green/blue:
    ImageNet-A holds 2 of the 3 classes, as the real one holds 200 of 1000."""
    root = tmp_path_factory.mktemp("coop")
    rng = np.random.default_rng(0)
    wnids = {"n01": "red", "n02": "green", "n03": "blue"}
    (root / "imagenet").mkdir()
    (root / "imagenet" / "classnames.txt").write_text("".join(f"{w} {c}\n" for w, c in wnids.items()))
    for y, (w, c) in enumerate(wnids.items()):
        for i in range(8):
            _png(root / "imagenet/images/train" / w / f"{i}.png", RGB[c], rng)
        for i in range(4):
            _png(root / "imagenet/images/val" / w / f"{i}.png", RGB[c], rng)
            _png(root / "imagenetv2/imagenetv2-matched-frequency-format-val" / str(y) / f"{i}.png", RGB[c], rng)
            _png(root / "imagenet-sketch/images" / w / f"{i}.png", tuple(v // 2 + 60 for v in RGB[c]), rng)
            if w != "n02":
                _png(root / "imagenet-adversarial/imagenet-a" / w / f"{i}.png", RGB[c], rng)
            if w != "n01":
                _png(root / "imagenet-rendition/imagenet-r" / w / f"{i}.png", RGB[c], rng)
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for y, (c, colour) in enumerate([("Forest", "green"), ("River", "blue")]):  # classes ImageNet does not have
        for s, n in (("train", 18), ("val", 8), ("test", 4)):
            for i in range(n):
                rel = f"{c}/{s}_{i}.png"
                _png(root / "eurosat/2750" / rel, RGB[colour], rng)
                split[s].append([rel, y, c])
    (root / "eurosat" / "split_zhou_EuroSAT.json").write_text(json.dumps(split))
    return str(root)


def _cfg(method, dataset="eurosat", protocol="fewshot", shots=16, **settings):
    return resolve_configs(RunSpec(dataset=dataset, method=method, protocol=protocol, shots=shots, settings=settings))


# -- A. the defaults ----------------------------------------------------------------------------------------------


def test_coop_protocol_methods_test_the_last_epoch_layernorm_paper_methods_the_best(tiny_clip, tiny_folder, tmp_path):
    for m in ("clipfit", "bitfit", "llu"):
        assert _cfg(m)[1].select == "last", m
    for m in ("layernorm", "prompt", "adapter", "compacter", "linear_probe", "full"):
        assert _cfg(m)[1].select == "best", m
    ds = f"imagefolder:{tiny_folder}"
    run = clipfit.train(tiny_clip, dataset=ds, out=tmp_path / "cf", shots=4, progress=False, **FAST)
    assert run.metrics["select"] == "last" and run.metrics["best_epoch"] == 2
    run = clipfit.train(tiny_clip, dataset=ds, method="layernorm", out=tmp_path / "ln", shots=4, progress=False, **FAST)
    assert run.metrics["select"] == "best"
    run = clipfit.train(tiny_clip, dataset=ds, out=tmp_path / "cf2", shots=4, progress=False, select="best", **FAST)
    assert run.metrics["select"] == "best"


@pytest.mark.parametrize("shots, epochs", [(1, 50), (2, 100), (4, 100), (8, 200), (16, 200)])
def test_llu_epochs_follow_coop_by_shots(shots, epochs):
    assert _cfg("llu", shots=shots)[1].epochs == epochs
    assert _cfg("llu", dataset="imagenet", shots=shots)[1].epochs == 50


def test_llu_dirac_mask_refuses_clustering(tiny_clip, tiny_folder, tmp_path):
    spec = dict(dataset=f"imagefolder:{tiny_folder}", shots=2, progress=False, **FAST)
    with pytest.raises(ClipfitError, match="clusters=0"):
        clipfit.train(tiny_clip, method="llu", out=tmp_path / "a", mask="dirac", clusters=512, **spec)
    run = clipfit.train(tiny_clip, method="llu:dirac", out=tmp_path / "b", **spec)
    assert run.config["method_config"]["clusters"] == 0


def test_hm_is_the_harmonic_mean_of_mean_base_and_mean_new():
    # seed 1: base 80, new 40; seed 2: base 40, new 80. Per-seed HMs are 53.33 each; the papers' row is HM(60, 60).
    rows = [{"dataset": "d", "shots": 16, "method": "m", "seeds": [1, 2], "metrics": {
        "base": {"mean": 60.0, "std": 28.28, "values": [80.0, 40.0]},
        "new": {"mean": 60.0, "std": 28.28, "values": [40.0, 80.0]},
        "hm": {"mean": 160 / 3, "std": 0.0, "values": [160 / 3, 160 / 3]}}}]
    hm_of_means(rows)
    assert rows[0]["metrics"]["hm"]["mean"] == pytest.approx(60.0)
    assert rows[0]["metrics"]["hm"]["values"] == [pytest.approx(160 / 3)] * 2
    # the Average block of several datasets: HM of the average base and average new accuracies
    other = {"dataset": "e", "shots": 16, "method": "m", "seeds": [1], "metrics": {
        "base": {"mean": 90.0, "std": 0.0, "values": [90.0]}, "new": {"mean": 30.0, "std": 0.0, "values": [30.0]},
        "hm": {"mean": 45.0, "std": None, "values": [45.0]}}}
    s = {"protocol": "base2new", "datasets": ["d", "e"], "shots": [16], "methods": ["m"], "seeds": [1, 2],
         "missing": {}, "rows": rows + [other]}
    lines = base2new_table(s).splitlines()
    hm_line = next(ln for ln in lines if ln.split()[:1] == ["HM"])
    assert float(hm_line.split()[-1]) == pytest.approx(harmonic_mean(75.0, 45.0), abs=0.005)  # 56.25, not 52.5


def test_layernorm_paper_protocol_rules():
    ctx = lambda p, d, k: Context(p, d, k)  # noqa: E731
    assert [recipes.validation_shots(ctx("regimes", "eurosat", k)) for k in (1, 4, 16, 256, 512, 450)] == \
        [1, 4, 16, 25, 51, 45]
    assert recipes.validation_shots(ctx("regimes", "oxford_flowers", 16)) == 4
    assert recipes.validation_shots(ctx("fewshot", "eurosat", 16)) == 4
    assert [_cfg("layernorm", protocol="regimes", shots=k)[1].epochs for k in (16, 256)] == [100, 50]
    assert _cfg("layernorm", protocol="episodic", shots=0)[1].epochs == 100
    assert _cfg("layernorm", protocol="regimes")[1].flip is False and _cfg("clipfit")[1].flip is True
    assert _cfg("zeroshot", protocol="regimes")[0].templates == "imagenet80"
    assert _cfg("zeroshot", protocol="fewshot")[0].templates == "dataset"
    assert _cfg("linear_probe")[0].views == recipes.LINEAR_PROBE_VIEWS > 0


def test_validation_size_follows_the_protocol(tiny_clip, coop_root, tmp_path):
    common = dict(dataset="eurosat", root=coop_root, shots=6, progress=False, test=False, **FAST)
    for protocol, per_class in (("regimes", 6), ("fewshot", 4)):
        run = clipfit.train(tiny_clip, method="layernorm", protocol=protocol, out=tmp_path / protocol, **common)
        val = json.loads((run.dir / "items.json").read_text())["val"]
        assert len(val) == 2 * per_class and run.config["train_config"]["val_shots"] == per_class
    run = clipfit.train(tiny_clip, method="layernorm", out=tmp_path / "set", val_shots=1, **common)
    assert len(json.loads((run.dir / "items.json").read_text())["val"]) == 2


def test_the_linear_probe_trains_on_one_augmented_view_per_image_and_epoch(tiny_clip):
    from clipfit.backbone import Backbone
    from clipfit.method import build_method

    m = build_method("linear_probe", Backbone.from_pretrained(tiny_clip), ["red", "blue"], "a photo of a {}.",
                     _cfg("linear_probe")[0])
    assert m.trains_on_features and m.feature_views == recipes.LINEAR_PROBE_VIEWS == 10 and m.view_per_epoch
    n = 6  # images; the cache holds 10 views of each, view-major
    x, y = torch.arange(10 * n).float()[:, None].repeat(1, 4), torch.arange(n).repeat(10)
    src = FeatureSource(m, (x, y), None, TrainConfig(batch_size=3), seed=0, device=torch.device("cpu"))
    for epoch in range(3):  # as many steps as an epoch over the images, each image once, view `epoch`
        rows = torch.cat([xb[:, 0] for xb, _ in src.batches()]).long()
        assert sorted((rows % n).tolist()) == list(range(n)) and set((rows // n).tolist()) == {epoch}


# -- B. the protocol commands -------------------------------------------------------------------------------------


def test_several_datasets_in_one_grid(tiny_clip, tiny_folder, coop_root, tmp_path, capsys):
    ds = ["eurosat", f"imagefolder:{tiny_folder}"]
    res = clipfit.fewshot(tiny_clip, datasets=ds, root=coop_root, shots=[1, 2], methods=["zeroshot", "clipfit"],
                          seeds=[1, 2], out=tmp_path / "fs", progress=False, **FAST)
    s = res.summary
    assert s["datasets"] == ds and s["shots"] == [1, 2] and len(s["rows"]) == 2 * 2 * 2
    table = res.table()
    assert table.count("Average") == 3 and "1 shots" in table and "2 shots" in table
    # the Average row is the mean of the dataset rows
    avg = statistics.fmean(r["metrics"]["accuracy"]["mean"] for r in s["rows"] if r["method"] == "clipfit"
                           and r["shots"] == 2)
    first_block = table.split("\n\n")[1]
    assert f"{avg:.2f}" in next(ln for ln in first_block.splitlines() if ln.startswith("Average"))
    # zero-shot runs once per dataset, whatever the seeds and shots
    assert (tmp_path / "fs" / "eurosat" / "zeroshot" / "metrics.json").exists()
    assert not (tmp_path / "fs" / "eurosat" / "1shot" / "zeroshot").exists()
    # a dataset missing under --root stops the grid with one line naming it and the folder expected
    args = ["fewshot", "--model", tiny_clip, "--datasets", "eurosat,dtd", "--root", coop_root, "--shots", "1",
            "--methods", "zeroshot", "--seeds", "1", "--out", str(tmp_path / "miss"), "--quiet"]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "dtd" in err and f"{coop_root}/dtd" in err and "--skip-missing" in err
    assert main(args + ["--skip-missing"]) == 0
    out = capsys.readouterr().out
    assert "Average (1 of 2 datasets)" in out and "missing" in out.split("dtd", 1)[1].splitlines()[0]


def test_grids_reuse_finished_runs_and_refuse_runs_of_other_settings(tiny_clip, tiny_folder, tmp_path, monkeypatch):
    ds = f"imagefolder:{tiny_folder}"
    kw = dict(dataset=ds, methods=["clipfit"], seeds=[1], shots=2, out=tmp_path / "g", progress=False)
    first = clipfit.fewshot(tiny_clip, **kw, **FAST)
    import clipfit.protocols.jobs as jobs

    monkeypatch.setattr(jobs, "train_run", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert clipfit.fewshot(tiny_clip, **kw, **FAST).summary["rows"] == first.summary["rows"]
    with pytest.raises(ClipfitError, match="epochs=2.*epochs=3|settings"):
        clipfit.fewshot(tiny_clip, **kw, **{**FAST, "epochs": 3})
    run = next((tmp_path / "g").rglob("config.json")).parent
    from clipfit.engine.rundir import RunDir

    with pytest.raises(ClipfitError, match="seed=1.*seed=2"):
        check_same_run(RunDir(run), RunSpec(dataset=ds, model=tiny_clip, shots=2, seed=2, settings=FAST))


def test_domainshift_scores_subsets_of_the_classes(tiny_clip, coop_root, tmp_path, capsys):
    res = clipfit.domainshift(tiny_clip, root=coop_root, methods=["zeroshot", "clipfit", "linear_probe"], seeds=[1],
                              shots=4, out=tmp_path / "ds", progress=False, **{**FAST, "views": 0})
    s = res.summary
    assert s["targets"] == ["imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"]
    lp = next(r for r in s["rows"] if r["method"] == "linear_probe")["metrics"]
    # ImageNet-A (red, blue) scored by the class-specific probe on its own two columns of the three
    run = load_run(tmp_path / "ds" / "imagenet" / "4shot" / "linear_probe" / "seed1")
    from clipfit.data.catalogue import load_task
    from clipfit.engine.loop import eval_loader, predict

    task = load_task("imagenet_a", coop_root)
    logits, labels = predict(run.method, eval_loader(task.test, task, run.method, 64), run.device)
    hand = float((logits[:, [0, 2]].argmax(-1) == labels).float().mean()) * 100
    assert lp["imagenet_a"]["mean"] == pytest.approx(hand)
    # the Average column of CLIPFit Table 3: source and targets
    cols = ["imagenet", *s["targets"]]
    zs = next(r for r in s["rows"] if r["method"] == "zeroshot")["metrics"]
    avg = statistics.fmean(zs[c]["mean"] for c in cols)
    assert f"{avg:.2f}" in next(ln for ln in res.table().splitlines() if ln.startswith("zeroshot"))
    assert "source and the targets" in res.table()
    # the command line prints the same table, and --json the same summary
    args = ["domainshift", "--model", tiny_clip, "--root", coop_root, "--methods", "zeroshot,clipfit,linear_probe",
            "--seeds", "1", "--shots", "4", "--out", str(tmp_path / "ds"), "--quiet", "--set", "views=0"]
    args += [a for k, v in FAST.items() for a in ("--set", f"{k}={v}")]
    assert main(args) == 0 and capsys.readouterr().out.strip() == res.table()
    assert main(args + ["--json"]) == 0 and json.loads(capsys.readouterr().out) == s


def test_crossdataset_tests_targets_with_their_classes_and_template(tiny_clip, coop_root, tmp_path):
    res = clipfit.crossdataset(tiny_clip, root=coop_root, targets=["eurosat", "imagenet_r"],
                               methods=["zeroshot", "clipfit", "linear_probe"], seeds=[1, 2], shots=2,
                               out=tmp_path / "xd", progress=False, **FAST)
    rows = {r["method"]: r["metrics"] for r in res.summary["rows"]}
    assert rows["linear_probe"]["eurosat"]["mean"] is None  # class-specific: cannot score other classes
    assert rows["linear_probe"]["imagenet_r"]["mean"] is not None  # a subset of its classes it can
    cfg = json.loads((tmp_path / "xd" / "imagenet" / "2shot" / "clipfit" / "seed1" / "config.json").read_text())
    assert cfg["protocol"] == "crossdataset" and cfg["method_config"]["beta"] == 8.0
    m = json.loads((tmp_path / "xd" / "imagenet" / "2shot" / "clipfit" / "seed1" / "metrics.json").read_text())
    assert m["test"]["eurosat"]["n"] == 8 and m["test"]["all"]["n"] == 12
    avg = statistics.fmean(rows["clipfit"][t]["mean"] for t in ("eurosat", "imagenet_r"))  # targets only
    line = next(ln for ln in res.table().splitlines() if ln.startswith("clipfit"))
    assert line.split()[-1] == f"{avg:.2f}"
    # a target reads with its own template
    run = clipfit.load(tmp_path / "xd" / "imagenet" / "2shot" / "clipfit" / "seed1")
    assert run.evaluate("eurosat", coop_root)["accuracy"] == pytest.approx(m["test"]["eurosat"]["accuracy"])


def test_regimes(tiny_clip, tiny_folder, coop_root, tmp_path, monkeypatch):
    ds = ["eurosat", f"imagefolder:{tiny_folder}"]
    res = clipfit.regimes(tiny_clip, datasets=ds, root=coop_root, low_shots=[1, 2], high_shots=[17],
                          methods=["zeroshot", "layernorm", "linear_probe", "linear_probe+ln"], seeds=[1],
                          out=tmp_path / "r", progress=False, **{**FAST, "views": 2})
    s = res.summary
    zs = {d: v["zero_shot_accuracy"] for d, v in s["similarity"].items()}
    assert all((v["similarity"] == "high") == (v["zero_shot_accuracy"] >= 55) for v in s["similarity"].values())
    assert s["shots"][ds[1]]["high"] == [] and f"{ds[1]}/17" in s["excluded"]  # 10 training images per class
    assert s["shots"]["eurosat"] == {"low": [1, 2], "high": [17]}
    cfg = json.loads((tmp_path / "r" / "eurosat" / "2shot" / "layernorm" / "seed1" / "config.json").read_text())
    assert cfg["train_config"]["val_shots"] == 2 and cfg["protocol"] == "regimes"
    zcfg = json.loads((tmp_path / "r" / "eurosat" / "zeroshot" / "config.json").read_text())
    assert len(zcfg["templates"]) == 80 and zs["eurosat"] is not None
    table = res.table()
    assert "Figure 3" in table and "Figure 4" in table and "Table 1" in table and "sits out" in table


def test_regime_table_averages_over_shots_then_datasets():
    def row(d, k, m, x):
        return {"dataset": d, "shots": k, "method": m, "seeds": [1], "metrics": {"accuracy": {"mean": x, "std": 0.0,
                                                                                                  "values": [x]}}}

    s = {"protocol": "regimes", "methods": ["layernorm"], "seeds": [1], "datasets": ["a", "b", "c"],
         "regimes": ["low"], "missing": {}, "excluded": {}, "threshold": 55.0,
         "primary_metric": {"a": "accuracy", "b": "accuracy", "c": "accuracy"},
         "similarity": {"a": {"zero_shot_accuracy": 70.0, "similarity": "high"},
                        "b": {"zero_shot_accuracy": 60.0, "similarity": "high"},
                        "c": {"zero_shot_accuracy": 20.0, "similarity": "low"}},
         "shots": {d: {"low": [1, 2]} for d in "abc"},
         "rows": [row("a", 1, "layernorm", 50.0), row("a", 2, "layernorm", 70.0), row("b", 1, "layernorm", 80.0),
                  row("b", 2, "layernorm", 90.0), row("c", 1, "layernorm", 10.0), row("c", 2, "layernorm", 30.0)]}
    fig3 = regimes_table(s).split("\n\n")[1]
    line = next(ln for ln in fig3.splitlines() if ln.startswith("layernorm"))
    assert line.split()[1:] == ["72.50", "20.00"]  # high: mean(60, 85); low: mean(10, 30)


def test_episodes_are_fixed_by_the_seed_and_scored_by_prototypes():
    labels = np.repeat(np.arange(6), 10)
    spec = Episodes(ways=3, shots=2, queries=4, episodes=5, seed=7)
    a, b = draw_episodes(labels, spec), draw_episodes(labels, spec)
    for (s1, q1, l1), (s2, q2, l2) in zip(a, b):
        assert np.array_equal(s1, s2) and np.array_equal(q1, q2) and np.array_equal(l1, l2)
        assert not set(s1) & set(q1) and len(set(labels[s1])) == 3
    assert not np.array_equal(a[0][0], draw_episodes(labels, Episodes(3, 2, 4, 5, seed=8))[0][0])
    perfect = torch.nn.functional.one_hot(torch.from_numpy(labels), 6).float()
    assert episode_accuracies(perfect, labels, spec) == [100.0] * 5
    with pytest.raises(ClipfitError, match="need 3 classes"):
        draw_episodes(labels, Episodes(3, 8, 4, 1, seed=1))


def test_episodic_end_to_end(tiny_clip, tmp_path):
    res = clipfit.episodic(tiny_clip, dataset="synth_episodic", methods=["zeroshot", "layernorm"], seeds=[1, 2],
                           shots=[1, 5], queries=3, episodes=20, base_shots=1, out=tmp_path / "e", progress=False,
                           **FAST)
    s = res.summary
    assert (s["base_classes"], s["novel_classes"]) == (40, 16)
    ln = json.loads((tmp_path / "e" / "synth_episodic" / "1shot" / "layernorm" / "seed1" / "config.json").read_text())
    assert len(ln["classnames"]) == 40 and ln["subsample"] == "train"  # stage one sees the base classes only
    zs_dir = tmp_path / "e" / "synth_episodic" / "zeroshot"
    m = json.loads((zs_dir / "metrics.json").read_text())
    key = Episodes(5, 1, 3, 20, seed=2).key
    eps = m["test"][key]["episodes"]
    assert len(eps) == 20 and m["test"][key]["accuracy"] == pytest.approx(statistics.fmean(eps))
    row = next(r for r in s["rows"] if r["method"] == "zeroshot" and r["shots"] == 1)["metrics"]["accuracy"]
    pooled = m["test"][Episodes(5, 1, 3, 20, seed=1).key]["episodes"] + eps
    assert row["mean"] == pytest.approx(statistics.fmean(pooled))
    assert row["ci95"] == pytest.approx(1.96 * statistics.stdev(pooled) / len(pooled) ** 0.5)
    assert "5-way 1-shot" in res.table() and "±" in res.table()
    with pytest.raises(ClipfitError, match="not an episodic set"):
        clipfit.episodic(tiny_clip, dataset="synth", methods=["zeroshot"], seeds=[1], out=tmp_path / "x",
                         progress=False)


def test_tables_show_each_datasets_headline_metric(tiny_clip, tiny_folder, tmp_path):
    """A dataset whose paper reports another metric first (iWildCam: macro F1) shows it in the tables; the others
    stay in results.json. Stand-in: the tiny folder declared as such."""
    from dataclasses import replace

    from clipfit.data import register_dataset  # the plug-in extension point
    from clipfit.data.catalogue import DATASETS, load_task

    if "wilds_standin" not in DATASETS:
        register_dataset("wilds_standin", needs_root=False, help="test stand-in")(
            lambda root: replace(load_task(f"imagefolder:{tiny_folder}"), name="wilds_standin",
                                 metrics=("macro_f1", "accuracy")))
    res = clipfit.fewshot(tiny_clip, datasets=["wilds_standin", f"imagefolder:{tiny_folder}"], shots=1,
                          methods=["zeroshot"], seeds=[1], out=tmp_path / "w", progress=False)
    row = next(r for r in res.summary["rows"] if r["dataset"] == "wilds_standin")["metrics"]
    assert set(row) == {"macro_f1", "accuracy"} and res.summary["primary_metric"]["wilds_standin"] == "macro_f1"
    line = next(ln for ln in res.table().splitlines() if ln.startswith("wilds_standin"))
    assert "(macro_f1)" in line and line.split()[-1] == f"{row['macro_f1']['mean']:.2f}"


MINI = {"train": ["n01532829", "n01558993"], "val": ["n01855672"], "test": ["n02219486", "n01930112", "n01981276"]}


@pytest.fixture(scope="module")
def mini_root(tmp_path_factory):
    """Mini-ImageNet in its common layout: images/ and train/val/test.csv of 'filename,label' (WordNet ids)."""
    root = tmp_path_factory.mktemp("mini")
    d = root / "mini_imagenet"
    rng = np.random.default_rng(1)
    colours = list(RGB.values()) * 2
    for split, wnids in MINI.items():
        rows = []
        for j, w in enumerate(wnids):
            for i in range(6):
                rows.append(f"{w}{i:08d}.jpg,{w}")
                _png(d / "images" / f"{w}{i:08d}.jpg", colours[j], rng)
        (d / f"{split}.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    return str(root)


def test_episodic_on_mini_imagenet_layout(tiny_clip, mini_root, tmp_path, capsys):
    args = ["episodic", "--model", tiny_clip, "--dataset", "mini_imagenet", "--root", mini_root, "--ways", "3",
            "--shots", "1,2", "--queries", "3", "--episodes", "4", "--methods", "zeroshot,layernorm", "--seeds", "1",
            "--out", str(tmp_path / "e"), "--quiet", "--json", *[a for k, v in FAST.items() for a in ("--set", f"{k}={v}")]]
    assert main(args) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["base_classes"], s["novel_classes"], s["base_shots"]) == (2, 3, 0)
    cfg = json.loads((tmp_path / "e" / "mini_imagenet" / "all" / "layernorm" / "seed1" / "config.json").read_text())
    assert cfg["classnames"] == ["house finch", "American robin"] and cfg["protocol"] == "episodic"
    assert len(json.loads((tmp_path / "e" / "mini_imagenet" / "all" / "layernorm" / "seed1" / "items.json")
                          .read_text())["train"]) == 12  # every base image
    assert [r["metrics"]["accuracy"]["episodes"] for r in s["rows"]] == [4] * 4

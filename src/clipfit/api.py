"""The Python API; the `clipfit` command is a thin layer over it.

    import clipfit
    run = clipfit.train(dataset="imagefolder:~/photos", method="clipfit", shots=16, out="runs/photos", epochs=50)
    run.metrics["test"]                        # accuracy of the kept checkpoint on the test split
    run.predict(["a.jpg"], topk=3)             # paths or PIL images
    run.evaluate("imagefolder:~/other")        # another dataset (its classes, its template)
    run.export("out/clip-tuned")               # a plain transformers CLIP checkpoint
    res = clipfit.base2new(dataset="synth_shift", methods=["zeroshot", "clipfit"], seeds=[1, 2, 3], out="runs/b2n")
    print(res.table()); res.rows()

Settings (any `--set` key of the command line) are keyword arguments with typed values: `epochs=5, beta=2.0`.

The CLI and the package root import this module at start-up: what loads torch, numpy or PIL (the engine, the
protocols, the methods, the dataset catalogue and its checks) is imported inside the function that needs it.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data.dataset_registry import SUITES
from .data.sources import SOURCES
from .data.types import check_template
from .errors import ClipfitError
from .hub import EMBEDDED_MODEL
from .recipes import PROTOCOLS  # the protocols a run can name
from .threads import with_threads


def _quiet(_: str) -> None:
    pass


# -- arguments, checked at the edge: the same one-line errors as the command line -----------------------------------
def _int(name: str, x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise ClipfitError(f"{name}={x!r}: expected an integer")
    return x


def _str(name: str, x: Any, optional: bool = False) -> str | None:
    if x is None and optional:
        return None
    if not isinstance(x, str) or not x.strip():
        raise ClipfitError(f"{name}={x!r}: expected a non-empty string")
    return x


def _path(name: str, x: Any) -> str | os.PathLike:
    if not isinstance(x, (str, os.PathLike)) or not str(x).strip():
        raise ClipfitError(f"{name}={x!r}: expected a folder (a path)")
    return x


def _root(root: Any) -> str | None:
    """`root`: None, or a folder; an empty or blank one is refused (it would quietly mean none)."""
    if root is None:
        return None
    if not isinstance(root, (str, os.PathLike)) or not str(root).strip():
        raise ClipfitError(f"--root {root!r}: give the folder holding the datasets, or leave --root out")
    return str(root)


def _template(template: Any) -> str | None:
    return None if template is None else check_template(template, "--template")


def _list(name: str, x: Any, item: type) -> list:
    """A list argument: a list or tuple, or (as on the command line) one comma-separated string, or for integers one
    integer; each entry of type `item`, at least one, none twice (a repeat would count one run twice in a mean)."""
    if isinstance(x, str):
        x = [v.strip() for v in x.split(",") if v.strip()]
        if item is int:
            try:
                x = [int(v) for v in x]
            except ValueError:
                raise ClipfitError(f"{name}: expected comma-separated integers, got {','.join(x)!r}") from None
    elif item is int and isinstance(x, int) and not isinstance(x, bool):
        x = [x]
    if not isinstance(x, (list, tuple)) or not all(isinstance(v, item) and not isinstance(v, bool) for v in x) \
            or (item is str and not all(v.strip() for v in x)):
        raise ClipfitError(f"{name}={x!r}: expected a list of {item.__name__}s (or one comma-separated string)")
    if not x:
        raise ClipfitError(f"{name}: give at least one")
    dup = next((v for i, v in enumerate(x) if v in x[:i]), None)
    if dup is not None:
        raise ClipfitError(f"{name} {','.join(map(str, x))}: {dup} is given twice; give each once (a repeat would "
                           "count one run twice)")
    return list(x)


class Run:
    """A trained run directory: its config and metrics, and the tuned model (loaded on first use)."""

    def __init__(self, dir: str | os.PathLike, device: str | None = None):
        from .engine.rundir import RunDir

        self._rundir = RunDir(_path("run_dir", dir))
        self._rundir.require_trained()
        self.device = device
        self._loaded = None

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, method={self.config['method']!r})"

    @property
    def dir(self) -> Path:
        return self._rundir.path

    @property
    def config(self) -> dict:
        """config.json: model, dataset, method and training settings, classes, templates, versions."""
        return self._rundir.read_config()

    @property
    def metrics(self) -> dict:
        """metrics.json: validation accuracy of the kept checkpoint, test accuracy, per-epoch history."""
        return self._rundir.read_metrics() or {}

    def _model(self):
        """The loaded run, with the run's own classes and templates (an evaluation on another dataset changes them)."""
        from .engine.run import load_run

        if self._loaded is None:
            self._loaded = load_run(self.dir, self.device)
        return self._loaded.reset()

    def predict(self, images: Sequence[str | os.PathLike | Any], classes: Sequence[str] | None = None,
                topk: int = 5) -> list[dict]:
        """Top-k classes with probabilities for each image (paths or PIL images); `classes` replaces the run's own
        (class-agnostic methods only)."""
        from .engine.use import predict_images, read_classes

        if _int("topk", topk) < 1:
            raise ClipfitError(f"topk={topk}: must be at least 1")
        import numpy as np
        from PIL import Image

        one = isinstance(images, (str, bytes, os.PathLike, Image.Image, np.ndarray)) or not isinstance(images, Iterable)
        images = [images] if one else list(images)
        if not images:
            raise ClipfitError("predict: give at least one image (a path or a PIL image)")
        if isinstance(classes, str):
            classes = read_classes(classes)  # a file, or 'a,b,c', as --classes
        elif classes is not None:
            classes = _list("classes", classes, str)
        return predict_images(self._model(), images, classes or None, topk)

    def evaluate(self, dataset: str | None = None, root: str | None = None, subsample: str | None = None,
                 split: str = "test", progress: bool = False) -> dict:
        """Accuracy on a dataset split: the run's own dataset by default; another dataset is scored with its own
        classes and template (cross-dataset use)."""
        from .engine.run import eval_run

        dataset, root = _str("dataset", dataset, optional=True), _root(root)
        return eval_run(self.dir, dataset, root, subsample, split, progress=progress, loaded=self._model())

    def export(self, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the tuned model as a plain transformers CLIP checkpoint (model, tokenizer, image processor)."""
        from .engine.use import export_merged

        return Path(export_merged(self.dir, _path("out_dir", out_dir), overwrite))


def load(run_dir: str | os.PathLike, device: str | None = None) -> Run:
    """A trained run directory (the `out` of `train`)."""
    return Run(run_dir, device)


@with_threads
def train(model: str | None = None, *, dataset: str | None = None, out: str | os.PathLike, method: str = "clipfit",
          shots: int = 16, seed: int = 1, root: str | None = None, subsample: str = "all", protocol: str = "",
          template: str | None = None, items: str | None = None, device: str | None = None, overwrite: bool = False,
          resume: bool = False, test: bool = True, progress: bool = True, **settings: Any) -> Run:
    """Adapt `model` (a hub id or a folder; None: the embedded mini-clip) to `dataset` with `method` and write the
    run directory `out`. `settings` are method and training settings (`clipfit methods --details`), typed."""
    from .engine.run import RunSpec, train_run

    if not dataset and not resume:
        raise ClipfitError("train needs a dataset (see `clipfit datasets`)")
    out, dataset, method = _path("out", out), _str("dataset", dataset, optional=True), _str("method", method)
    if items is not None:
        items = str(_path("items", items))
    if subsample not in ("all", "base", "new"):
        raise ClipfitError(f"subsample={subsample!r}: choose all, base or new")
    if protocol != "" and protocol not in PROTOCOLS:
        raise ClipfitError(f"protocol={protocol!r}: choose one of {', '.join(PROTOCOLS)} (or '' for the default)")
    device = _str("device", device, optional=True)
    spec = RunSpec(dataset=dataset or "", method=method, model=model or EMBEDDED_MODEL, root=_root(root),
                   shots=_int("shots", shots), seed=_int("seed", seed), subsample=subsample, protocol=protocol,
                   template=_template(template), settings=settings, items=items, device=device)
    train_run(spec, out, overwrite=overwrite, progress=progress, test=test, resume=resume)
    return Run(out, device)


@dataclass
class GridResult:
    """The results of a protocol grid: `table()` is the text the command line prints (the paper's layout), `rows()`
    one plain dict per row of results (its labels, then each metric's mean, `_std` and per-seed `_values`),
    `summary` what results.json holds."""

    summary: dict
    dir: Path

    def table(self) -> str:
        from .protocols.layouts import format_table

        return format_table(self.summary)

    def rows(self) -> list[dict]:
        out = []
        for rec in self.summary["rows"]:
            row: dict[str, Any] = {k: v for k, v in rec.items() if k != "metrics"}
            for metric, v in rec["metrics"].items():
                row[metric], row[f"{metric}_std"], row[f"{metric}_values"] = v["mean"], v["std"], v["values"]
                if "ci95" in v:
                    row[f"{metric}_ci95"] = v["ci95"]
            out.append(row)
        return out


Executor = Callable[[list, bool], list[dict]]


def _args(*, model: str | None, out: str | os.PathLike, methods: Sequence[str], seeds: Sequence[int],
          root: str | None, template: str | None, device: str | None, progress: bool, echo: Callable[[str], None],
          skip_missing: bool, executor: Executor | None, dry_run: bool, settings: dict[str, Any]):
    """What every grid shares, checked, as the protocols take it (`protocols.cells.GridArgs`)."""
    from .engine.run import RunSpec
    from .protocols.cells import DryRun, GridArgs

    methods, seeds = _list("methods", methods, str), _list("seeds", seeds, int)
    base = RunSpec(dataset="", method=methods[0], model=model or EMBEDDED_MODEL, root=_root(root),
                   template=_template(template), settings=dict(settings), device=device)
    dry = DryRun() if dry_run else None
    return GridArgs(base=base, out=Path(_path("out", out)), methods=methods, seeds=seeds, progress=progress,
                    echo=echo, skip_missing=skip_missing, executor=dry.stop if dry else executor, dry_run=dry)


def _result(protocol: str, args, run: Callable[[], dict]):
    """The grid's GridResult; with `dry_run`, a `protocols.dryrun.PlannedGrid` (its runs, their settings and an
    estimate of their time; nothing runs)."""
    from .protocols.cells import Planned
    from .protocols.dryrun import PlannedGrid

    try:
        return GridResult(run(), args.out)
    except Planned:
        return PlannedGrid(protocol, args.dry_run, args.base.model, args.base.root, args.base.device, args.echo,
                           head=[f"model: {args.base.model}"])


def _datasets(x: Any) -> list[str]:
    """Dataset names (a list, or one comma-separated string) with suites expanded and aliases resolved."""
    from .data.catalogue import expand_datasets

    return expand_datasets(x if isinstance(x, str) else _list("datasets", x, str))


def _one_of(protocol: str, dataset: str | None, datasets: str | Sequence[str] | None) -> None:
    if bool(dataset) == bool(datasets):
        raise ClipfitError(f"{protocol} needs a dataset or a list of datasets (one of them)")


def _grid(protocol: str, args, dataset: str | None, datasets: str | Sequence[str] | None,
          shots: int | Sequence[int]) -> GridResult:
    from .protocols.grid import run_grid

    names = _datasets(datasets) if datasets else _datasets([_str("dataset", dataset)])
    return _result(protocol, args, lambda: run_grid(protocol, args, names, _list("shots", shots, int)))


@with_threads
def fewshot(model: str | None = None, *, dataset: str | None = None, datasets: str | Sequence[str] | None = None,
            out: str | os.PathLike, methods: Sequence[str] = ("zeroshot", "clipfit"), seeds: Sequence[int] = (1, 2, 3),
            shots: int | Sequence[int] = 16, root: str | None = None, template: str | None = None,
            device: str | None = None, progress: bool = True, echo: Callable[[str], None] = _quiet,
            skip_missing: bool = False, executor: Executor | None = None, dry_run: bool = False,
            **settings: Any) -> GridResult:
    """Few-shot protocol: every method on every dataset (`dataset`, or `datasets`: names or suites such as
    "coop11"), shot count and seed; test accuracy mean ± std, and the papers' Average row over datasets. Finished
    runs under `out` are reused, so an interrupted grid resumes. `dry_run`: plan the runs and estimate their time
    instead (a `PlannedGrid`: `text`, `data`), datasets that cannot be read included."""
    _one_of("fewshot", dataset, datasets)
    args = _args(model=model, out=out, methods=methods, seeds=seeds, root=root, template=template, device=device,
                 progress=progress, echo=echo, skip_missing=skip_missing, executor=executor, dry_run=dry_run,
                 settings=settings)
    return _grid("fewshot", args, dataset, datasets, shots)


@with_threads
def base2new(model: str | None = None, *, dataset: str | None = None, datasets: str | Sequence[str] | None = None,
             out: str | os.PathLike, methods: Sequence[str] = ("zeroshot", "clipfit"), seeds: Sequence[int] = (1, 2, 3),
             shots: int | Sequence[int] = 16, root: str | None = None, template: str | None = None,
             device: str | None = None, progress: bool = True, echo: Callable[[str], None] = _quiet,
             skip_missing: bool = False, executor: Executor | None = None, dry_run: bool = False,
             **settings: Any) -> GridResult:
    """Base-to-new protocol: train on the base half of the classes, test on base and new; HM of the mean base and
    mean new accuracies (`dry_run`: as for `fewshot`)."""
    _one_of("base2new", dataset, datasets)
    args = _args(model=model, out=out, methods=methods, seeds=seeds, root=root, template=template, device=device,
                 progress=progress, echo=echo, skip_missing=skip_missing, executor=executor, dry_run=dry_run,
                 settings=settings)
    return _grid("base2new", args, dataset, datasets, shots)


def _transfer(protocol: str, args, source: str, targets: str | Sequence[str] | None, shots: int) -> GridResult:
    from .protocols.transfer import DEFAULT_TARGETS, run_transfer

    return _result(protocol, args, lambda: run_transfer(
        protocol, args, _datasets([_str("source", source)])[0],
        _datasets(targets if targets is not None else DEFAULT_TARGETS[protocol]), _int("shots", shots)))


@with_threads
def crossdataset(model: str | None = None, *, source: str = "imagenet", targets: str | Sequence[str] | None = None,
                 out: str | os.PathLike, methods: Sequence[str] = ("zeroshot", "clipfit"),
                 seeds: Sequence[int] = (1, 2, 3), shots: int = 16, root: str | None = None,
                 template: str | None = None, device: str | None = None, progress: bool = True,
                 echo: Callable[[str], None] = _quiet, skip_missing: bool = False, executor: Executor | None = None,
                 dry_run: bool = False, **settings: Any) -> GridResult:
    """Cross-dataset transfer (CLIPFit Table 9): train on `source` once per seed, test on every target (default:
    CoOp's 10 other datasets) with the target's classes and template; Average of the targets."""
    args = _args(model=model, out=out, methods=methods, seeds=seeds, root=root, template=template, device=device,
                 progress=progress, echo=echo, skip_missing=skip_missing, executor=executor, dry_run=dry_run,
                 settings=settings)
    return _transfer("crossdataset", args, source, targets, shots)


@with_threads
def domainshift(model: str | None = None, *, source: str = "imagenet", targets: str | Sequence[str] | None = None,
                out: str | os.PathLike, methods: Sequence[str] = ("zeroshot", "clipfit"),
                seeds: Sequence[int] = (1, 2, 3), shots: int = 16, root: str | None = None,
                template: str | None = None, device: str | None = None, progress: bool = True,
                echo: Callable[[str], None] = _quiet, skip_missing: bool = False, executor: Executor | None = None,
                dry_run: bool = False, **settings: Any) -> GridResult:
    """Domain shift (CLIPFit Table 3): train on `source` (ImageNet), test on its shifted versions (default
    ImageNet-V2, -Sketch, -A, -R; -A and -R on their 200-class subset); Average of source and targets."""
    args = _args(model=model, out=out, methods=methods, seeds=seeds, root=root, template=template, device=device,
                 progress=progress, echo=echo, skip_missing=skip_missing, executor=executor, dry_run=dry_run,
                 settings=settings)
    return _transfer("domainshift", args, source, targets, shots)


REGIME_METHODS = ("zeroshot", "linear_probe", "prompt", "layernorm", "adapter", "compacter", "full")


@with_threads
def regimes(model: str | None = None, *, datasets: str | Sequence[str] = "layernorm10", out: str | os.PathLike,
            methods: Sequence[str] = REGIME_METHODS, seeds: Sequence[int] = (1, 2, 3),
            regimes: Sequence[str] = ("low", "high"), low_shots: Sequence[int] | None = None,
            high_shots: Sequence[int] | None = None, root: str | None = None, template: str | None = None,
            device: str | None = None, progress: bool = True, echo: Callable[[str], None] = _quiet,
            skip_missing: bool = False, executor: Executor | None = None, dry_run: bool = False,
            **settings: Any) -> GridResult:
    """The LayerNorm-tuning paper's regimes (Figures 3-4, Table 1): low data (1-16 shots) and high data (256/512;
    CIFAR-100 450), low and high similarity by zero-shot accuracy at 55%."""
    from .protocols.regimes import run_regimes

    args = _args(model=model, out=out, methods=methods, seeds=seeds, root=root, template=template, device=device,
                 progress=progress, echo=echo, skip_missing=skip_missing, executor=executor, dry_run=dry_run,
                 settings=settings)
    return _result("regimes", args, lambda: run_regimes(
        args, _datasets(datasets), _list("regimes", regimes, str),
        low_shots=_list("low_shots", low_shots, int) if low_shots is not None else None,
        high_shots=_list("high_shots", high_shots, int) if high_shots is not None else None))


@with_threads
def episodic(model: str | None = None, *, dataset: str, out: str | os.PathLike,
             methods: Sequence[str] = ("zeroshot", "layernorm"), seeds: Sequence[int] = (1, 2, 3), ways: int = 5,
             shots: int | Sequence[int] = (1, 5), queries: int = 15, episodes: int = 600, base_shots: int = 0,
             root: str | None = None, template: str | None = None, device: str | None = None, progress: bool = True,
             echo: Callable[[str], None] = _quiet, executor: Executor | None = None, dry_run: bool = False,
             **settings: Any) -> GridResult:
    """Episodic few-shot (the LayerNorm-tuning paper's Tables 3-4): adapt on the base classes (`base_shots` per
    class, 0: all), then N-way K-shot episodes on the novel classes with the Classifier-Baseline; mean ± 95% CI."""
    from .protocols.episodic import run_episodic

    args = _args(model=model, out=out, methods=methods, seeds=seeds, root=root, template=template, device=device,
                 progress=progress, echo=echo, skip_missing=False, executor=executor, dry_run=dry_run,
                 settings=settings)
    return _result("episodic", args, lambda: run_episodic(
        args, _datasets([_str("dataset", dataset)])[0], ways=_int("ways", ways), shots=_list("shots", shots, int),
        queries=_int("queries", queries), episodes=_int("episodes", episodes), base_shots=_int("base_shots", base_shots)))


DEMO_SETTINGS = {"crop_scale": 0.5}  # 32x32 images: CoOp's 0.08 crops often cut the object out


DEMO_DATASET = "synth_faded"
DEMO_METHODS = ("zeroshot", "coop", "kgcoop", "clipfit")


@with_threads
def demo(methods: Sequence[str] = DEMO_METHODS, *, dataset: str = DEMO_DATASET, model: str | None = None,
         shots: int = 16, seeds: Sequence[int] = (1, 2, 3), out: str | os.PathLike | None = None,
         device: str | None = None, progress: bool = True, echo: Callable[[str], None] = _quiet,
         **settings: Any) -> GridResult:
    """The main job: base-to-new on the embedded model (no download), on `synth_faded`, a task whose base classes
    zero-shot CLIP gets only partly right: tuning gains on them, CoOp pays for it on the new classes, KgCoOp's
    knowledge guidance keeps more of them, and CLIPFit, which learns the shift in its image LayerNorms, keeps
    nearly all. The demo's own settings (`DEMO_SETTINGS`) are overridden by `settings`."""
    methods, seeds = _list("methods", methods, str), _list("seeds", seeds, int)
    settings = {**DEMO_SETTINGS, **settings}
    echo(f"clipfit demo: base-to-new, {', '.join(methods)} on {dataset}, {shots} shots, seeds "
         f"{','.join(map(str, seeds))}, model {model or 'clipfit/mini-clip'}; settings "
         f"{' '.join(f'{k}={v}' for k, v in settings.items())} (paper defaults otherwise)")
    if out is not None:
        return base2new(model, dataset=dataset, out=out, methods=methods, seeds=seeds, shots=shots, device=device,
                        progress=progress, echo=echo, **settings)
    with tempfile.TemporaryDirectory(prefix="clipfit-demo-") as tmp:
        return base2new(model, dataset=dataset, out=tmp, methods=methods, seeds=seeds, shots=shots, device=device,
                        progress=progress, echo=echo, **settings)


def methods(model: str | None = None) -> list[dict]:
    """Every method and preset: name, base method, the settings a preset fixes, one-line help, recipe; with `model`
    (a hub id or folder, read from its config.json alone), also whether it runs on that model's family ('runs') and
    why not ('why')."""
    from .method import METHODS

    family = None
    if model is not None:
        from .backbone import checkpoint_family, model_source

        model_source(model)  # a missing folder or an unreachable hub: one line
        family = checkpoint_family(model)
        if family is None:
            raise ClipfitError(f"--model {model}: its config.json cannot be read; give a transformers model folder")
    from .engine.support import unsupported

    out = []
    for name in METHODS.list():
        e = METHODS.get(name)
        out.append({"name": name, "base": e.base, "preset": dict(e.preset), "help": e.help,
                    "recipe": e.cls.recipe.name})
        if family is not None:
            why = unsupported(name, family)
            out[-1].update(family=family.name, runs=why is None, why=why)
    return out


def convert_openclip(checkpoint: str, out: str, activation: str, tokenizer: str | None = None,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                     vision_heads: int | None = None, text_heads: int | None = None) -> str:
    """Write a transformers folder for an OpenCLIP checkpoint of a plain CLIP ViT (no open_clip needed); see
    `clipfit.convert_openclip.convert_openclip`. Returns the folder."""
    from .convert_openclip import OPENAI_MEAN, OPENAI_STD
    from .convert_openclip import convert_openclip as convert

    def triple(v: Sequence[float] | None, default: tuple[float, float, float], what: str) -> tuple[float, float, float]:
        if v is None:
            return default
        if len(v) != 3:
            raise ClipfitError(f"--{what} needs 3 numbers (red, green, blue), got {len(v)}")
        return (float(v[0]), float(v[1]), float(v[2]))

    return convert(checkpoint, out, activation=activation, tokenizer=tokenizer,
                   mean=triple(mean, OPENAI_MEAN, "mean"), std=triple(std, OPENAI_STD, "std"),
                   vision_heads=vision_heads, text_heads=text_heads)


def datasets() -> list[dict]:
    """Every catalogue dataset: name, aliases, whether it is read from --root (and its folder there), whether it is
    test-only, its template when known without reading it, help."""
    from .data.catalogue import list_datasets
    return [{"name": e.name, "aliases": list(e.aliases), "needs_root": e.needs_root, "test_only": e.test_only,
             "folder": SOURCES[e.name].folder if e.name in SOURCES else None, "template": e.template, "help": e.help}
            for e in list_datasets()]


@dataclass
class DatasetsCheck:
    """What `datasets_check` found under `root`: one `clipfit.data.check.Finding` per dataset (name, status found /
    missing / incomplete, detail, classes, sizes, template, and for a missing or incomplete one the fix); `ok`
    when every dataset asked for was found whole; `text()` is what `clipfit datasets check` prints."""

    root: str
    findings: list

    @property
    def ok(self) -> bool:
        return all(f.status == "found" for f in self.findings)

    @property
    def data(self) -> dict:
        from .data.check import as_json

        return as_json(self.findings, self.root)

    def text(self) -> str:
        from .data.check import render

        return render(self.findings, self.root)


def dataset_names(names: str | Sequence[str] | None = None, suite: str | None = None) -> list[str]:
    """The datasets asked for by `names` (a list or a comma-separated string), then `suite`; none: every one."""
    chosen = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names or [])
    if suite is not None:
        if suite.lower() not in SUITES:
            raise ClipfitError(f"--suite {suite}: choose one of {', '.join(SUITES)}")
        chosen.append(suite)
    return [n for n in chosen if n]


def datasets_check(root: str, names: str | Sequence[str] | None = None, *, suite: str | None = None,
                   verify: bool = False, progress: bool = False) -> DatasetsCheck:
    """Which datasets are under `root` (`clipfit datasets check`): `names` (catalogue names or suites, a list or a
    comma-separated string), a `suite` (e.g. "coop11"), or by default every dataset read from --root. A missing or
    incomplete one comes with what to fetch from where. `verify` also decodes every image. (`clipfit.datasets_check`
    also takes the datasets of a paper's table: `clipfit.papers.listing.datasets_check`.)"""
    from .data.check import check

    return DatasetsCheck(root, check(dataset_names(names, suite), root, verify, progress))


def params(method: str, arch: str = "ViT-B/16", classes: int = 10, shots: int = 16, **settings: Any) -> dict:
    """Trainable parameters of `method` on a named architecture (random initialisation, no download); `shots`
    matters only for a method whose parameters grow with the training set (Tip-Adapter-F)."""
    from .engine.use import count_parameters

    return count_parameters(method, arch, classes, settings, shots)

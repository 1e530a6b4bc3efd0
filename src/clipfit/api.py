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
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ClipfitError

PROTOCOLS = ("fewshot", "base2new")


def _quiet(_: str) -> None:
    pass


class Run:
    """A trained run directory: its config and metrics, and the tuned model (loaded on first use)."""

    def __init__(self, dir: str | os.PathLike, device: str | None = None):
        from .engine.rundir import RunDir

        self._rundir = RunDir(dir)
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
        m, cfg = self._loaded.method, self._loaded.config
        if m.templates != cfg["templates"] or m.classnames != cfg["classnames"]:
            m.templates = list(cfg["templates"])
            m.set_classes(cfg["classnames"])
        return self._loaded

    def predict(self, images: Sequence[str | os.PathLike | Any], classes: Sequence[str] | None = None,
                topk: int = 5) -> list[dict]:
        """Top-k classes with probabilities for each image (paths or PIL images); `classes` replaces the run's own
        (class-agnostic methods only)."""
        from .engine.use import predict_images

        if topk < 1:
            raise ClipfitError(f"topk={topk}: must be at least 1")
        return predict_images(self._model(), list(images), list(classes) if classes else None, topk)

    def evaluate(self, dataset: str | None = None, root: str | None = None, subsample: str | None = None,
                 split: str = "test", progress: bool = False) -> dict:
        """Accuracy on a dataset split: the run's own dataset by default; another dataset is scored with its own
        classes and template (cross-dataset use)."""
        from .engine.run import eval_run

        return eval_run(self.dir, dataset, root, subsample, split, progress=progress, loaded=self._model())

    def export(self, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the tuned model as a plain transformers CLIP checkpoint (model, tokenizer, image processor)."""
        from .engine.use import export_merged

        return Path(export_merged(self.dir, out_dir, overwrite))


def load(run_dir: str | os.PathLike, device: str | None = None) -> Run:
    """A trained run directory (the `out` of `train`)."""
    return Run(run_dir, device)


def train(model: str | None = None, *, dataset: str | None = None, out: str | os.PathLike, method: str = "clipfit",
          shots: int = 16, seed: int = 1, root: str | None = None, subsample: str = "all", protocol: str = "",
          template: str | None = None, items: str | None = None, device: str | None = None, overwrite: bool = False,
          resume: bool = False, test: bool = True, progress: bool = True, **settings: Any) -> Run:
    """Adapt `model` (a hub id or a folder; None: the embedded mini-clip) to `dataset` with `method` and write the
    run directory `out`. `settings` are method and training settings (`clipfit methods --details`), typed."""
    from .backbone import EMBEDDED_MODEL
    from .engine.run import RunSpec, train_run

    if not dataset and not resume:
        raise ClipfitError("train needs a dataset (see `clipfit datasets`)")
    spec = RunSpec(dataset=dataset or "", method=method, model=model or EMBEDDED_MODEL, root=root, shots=shots,
                   seed=seed, subsample=subsample, protocol=protocol, template=template, settings=settings,
                   items=items, device=device)
    train_run(spec, out, overwrite=overwrite, progress=progress, test=test, resume=resume)
    return Run(out, device)


@dataclass
class GridResult:
    """The results of a protocol grid (methods x seeds): `table()` is the text the command line prints, `rows()`
    one plain dict per method, `summary` what results.json holds."""

    summary: dict
    dir: Path

    def table(self) -> str:
        from .protocols.grid import format_table

        return format_table(self.summary)

    def rows(self) -> list[dict]:
        out = []
        for method, res in self.summary["results"].items():
            row: dict[str, Any] = {"method": method}
            for metric, v in res.items():
                row[metric], row[f"{metric}_std"], row[f"{metric}_values"] = v["mean"], v["std"], v["values"]
            out.append(row)
        return out


def _grid(protocol: str, model: str | None, dataset: str, out: str | os.PathLike, methods: Sequence[str],
          seeds: Sequence[int], shots: int, root: str | None, template: str | None, device: str | None,
          progress: bool, echo: Callable[[str], None], settings: dict[str, Any]) -> GridResult:
    from .backbone import EMBEDDED_MODEL
    from .engine.run import RunSpec
    from .protocols.grid import run_grid

    if not methods:
        raise ClipfitError("give at least one method")
    spec = RunSpec(dataset=dataset, method=methods[0], model=model or EMBEDDED_MODEL, root=root, shots=shots,
                   template=template, settings=settings, device=device)
    summary = run_grid(protocol, spec, list(methods), list(seeds), out, progress=progress, echo=echo)
    return GridResult(summary, Path(out))


def fewshot(model: str | None = None, *, dataset: str, out: str | os.PathLike,
            methods: Sequence[str] = ("zeroshot", "clipfit"), seeds: Sequence[int] = (1, 2, 3), shots: int = 16,
            root: str | None = None, template: str | None = None, device: str | None = None, progress: bool = True,
            echo: Callable[[str], None] = _quiet, **settings: Any) -> GridResult:
    """Few-shot protocol: every method on every seed, test accuracy mean ± std. Finished runs under `out` are
    reused, so an interrupted grid resumes."""
    return _grid("fewshot", model, dataset, out, methods, seeds, shots, root, template, device, progress, echo, settings)


def base2new(model: str | None = None, *, dataset: str, out: str | os.PathLike,
             methods: Sequence[str] = ("zeroshot", "clipfit"), seeds: Sequence[int] = (1, 2, 3), shots: int = 16,
             root: str | None = None, template: str | None = None, device: str | None = None, progress: bool = True,
             echo: Callable[[str], None] = _quiet, **settings: Any) -> GridResult:
    """Base-to-new protocol: train on the base half of the classes, test on base and new, harmonic mean."""
    return _grid("base2new", model, dataset, out, methods, seeds, shots, root, template, device, progress, echo, settings)


DEMO_SETTINGS = {"crop_scale": 0.5}  # 32x32 images: CoOp's 0.08 crops often cut the object out


def demo(method: str = "clipfit", *, dataset: str = "synth_shift", model: str | None = None, shots: int = 16,
         seeds: Sequence[int] = (1, 2, 3), out: str | os.PathLike | None = None, device: str | None = None,
         progress: bool = True, echo: Callable[[str], None] = _quiet, **settings: Any) -> GridResult:
    """The main job: base-to-new, zero-shot vs `method`, on the embedded model and a shifted procedural task
    (no download). The demo's own settings (`DEMO_SETTINGS`) are overridden by `settings`."""
    methods = ["zeroshot"] + ([method] if method != "zeroshot" else [])
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


def methods() -> list[dict]:
    """Every method and preset: name, base method, the settings a preset fixes, one-line help, recipe."""
    from .tuners import METHODS

    out = []
    for name in METHODS.list():
        e = METHODS.get(name)
        out.append({"name": name, "base": e.base, "preset": dict(e.preset), "help": e.help,
                    "recipe": e.cls.recipe.name})
    return out


def datasets() -> list[dict]:
    """Every catalogue dataset: name, aliases, whether it is read from --root, whether it is test-only, help."""
    from .data.catalogue import list_datasets

    return [{"name": e.name, "aliases": list(e.aliases), "needs_root": e.needs_root, "test_only": e.test_only,
             "help": e.help} for e in list_datasets()]


def params(method: str, arch: str = "ViT-B/16", classes: int = 10, shots: int = 16, **settings: Any) -> dict:
    """Trainable parameters of `method` on a named architecture (random initialisation, no download); `shots`
    matters only for a method whose parameters grow with the training set (Tip-Adapter-F)."""
    from .engine.use import count_parameters

    return count_parameters(method, arch, classes, settings, shots)

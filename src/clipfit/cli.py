"""The `clipfit` command line, a thin layer over the Python API (`clipfit.api`): it parses arguments (and `--set`
strings into typed settings), calls the API and prints. User mistakes end as one line on stderr and exit status 2,
never a traceback.

The commands and their arguments are one table (`COMMANDS`), which `build_parser` turns into argparse parsers.
The engine, the methods and the protocols (torch, transformers) are imported inside the commands that use them, so
that `clipfit --help`, `clipfit datasets` and a mistyped command answer at once."""
from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import api
from .config import TrainConfig, describe, parse_settings
from .data.dataset_registry import SUITES
from .errors import ClipfitError
from .hub import ARCHS, EMBEDDED_MODEL, FAMILY_ARCHS  # not .backbone: that imports torch (slow to start)
from .recipes import PROTOCOLS
from .threads import set_threads
from .version import VersionAction


def _ints(s: str, what: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ClipfitError(f"--{what} expects comma-separated integers, got {s!r}") from None


def _floats(s: str, what: str) -> list[float]:
    try:
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ClipfitError(f"--{what} expects comma-separated numbers, got {s!r}") from None


def _emit(args, obj, text: str) -> None:
    print(json.dumps(obj) if args.json else text)


def _settings(args, methods: list[str]) -> dict:
    """The typed settings of the command's `--set key=value` strings (the only place they are parsed)."""
    from .method import METHODS  # torch

    return parse_settings(args.overrides, [METHODS.get(p).cls.Config for m in methods for p in m.split("@")]
                          + [TrainConfig])


def _echo(args):
    return (lambda s: print(s, file=sys.stderr)) if not args.quiet else (lambda s: None)


def _need_dataset(args) -> None:
    if not args.dataset:
        raise ClipfitError(f"clipfit {args.command} needs --dataset (see `clipfit datasets`)")


def cmd_train(args) -> None:
    if not args.resume:
        _need_dataset(args)
    settings = _settings(args, [args.method]) if not args.resume else {}
    if args.log:
        settings["log"] = args.log
    run = api.train(args.model, dataset=args.dataset, out=args.out, method=args.method, shots=args.shots,
                    seed=args.seed, root=args.root, subsample=args.subsample, protocol=args.protocol,
                    template=args.template, items=args.items, device=args.device, overwrite=args.overwrite,
                    resume=args.resume, test=not args.no_test, progress=not args.quiet, **settings)
    from .engine import distributed  # torch (loaded by the training above)

    if not distributed.current().is_main:  # the main process reports for all
        return
    m = {k: v for k, v in run.metrics.items() if k != "history"}
    method, subsample = run.config["method"], run.config["subsample"]
    test = m.get("test", {}).get(subsample, {})
    val = m["val_accuracy"] if m["val_accuracy"] is None else round(m["val_accuracy"], 2)
    procs = run.config.get("processes", 1)
    text = (f"trained {method} ({m['trainable_parameters']} parameters) in {m['train_seconds']:.1f}s in {procs} "
            f"process{'es' * (procs > 1)}; best epoch {m['best_epoch']}, val {val}"
            + (f", test {test['accuracy']:.2f} (n={test['n']})" if test else "") + f"\nrun directory: {args.out}")
    _emit(args, {"run_dir": args.out, **m}, text)


def cmd_analyze(args) -> None:
    from .analyses import analyze  # torch, matplotlib

    files = analyze(args.paths, args.out, args.tsne, args.layers, args.device, args.drift, args.towers)
    _emit(args, {"files": [str(f) for f in files]}, "\n".join(map(str, files)) or "nothing to draw")


def cmd_eval(args) -> None:
    r = api.load(args.run_dir, args.device).evaluate(args.dataset, args.root, args.subsample, args.split,
                                                     progress=not args.quiet)
    _emit(args, r, f"{r['dataset']} ({r['subsample']}, {r['split']}): accuracy {r['accuracy']:.2f} (n={r['n']})")


def cmd_predict(args) -> None:
    from .engine.use import read_classes  # torch

    out = api.load(args.run_dir, args.device).predict(args.images, read_classes(args.classes) if args.classes else None,
                                                      args.topk)
    text = "\n".join(f"{r['image']}: " + ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top"]) for r in out)
    _emit(args, {"predictions": out}, text)


def cmd_export(args) -> None:
    print(f"wrote {api.load(args.run_dir, 'cpu').export(args.merged, args.overwrite)}")


def cmd_convert_openclip(args) -> None:
    out = api.convert_openclip(args.checkpoint, args.out, args.activation, args.tokenizer,
                               _floats(args.mean, "mean") if args.mean else None,
                               _floats(args.std, "std") if args.std else None, args.vision_heads, args.text_heads)
    print(f"wrote {out}")


def cmd_params(args) -> None:
    r = api.params(args.method, args.arch, args.classes, args.shots, **_settings(args, [args.method]))
    _emit(args, r, str(r["trainable"]))


def _methods(args) -> list[str]:
    return [m.strip() for m in args.methods.split(",") if m.strip()]


def _common(args, methods: list[str]) -> dict:
    """The keyword arguments every grid of the API takes, from the command's arguments."""
    from .protocols.executors import make_executor  # torch

    return dict(out=args.out, methods=methods, seeds=_ints(args.seeds, "seeds"), root=args.root, template=args.template,
                device=args.device, progress=not args.quiet, echo=_echo(args),
                executor=make_executor(args.executor, args.address), dry_run=args.dry_run, **_settings(args, methods))


def _grid_data(args) -> dict:
    """The arguments of the grid command `args.command` that are its own (those every grid takes: `_common`)."""
    if args.command in ("fewshot", "base2new"):
        if bool(args.dataset) == bool(args.datasets):
            raise ClipfitError(f"clipfit {args.command} needs --dataset or --datasets (one of them; see `clipfit "
                               "datasets`)")
        return dict(dataset=args.dataset, datasets=args.datasets, shots=_ints(args.shots, "shots"))
    if args.command in ("crossdataset", "domainshift"):
        return dict(source=args.source, targets=args.targets, shots=args.shots)
    if args.command == "regimes":
        return dict(datasets=args.datasets, regimes=[r.strip() for r in args.regimes.split(",") if r.strip()],
                    low_shots=_ints(args.low_shots, "low-shots") if args.low_shots else None,
                    high_shots=_ints(args.high_shots, "high-shots") if args.high_shots else None)
    _need_dataset(args)  # episodic
    return dict(dataset=args.dataset, ways=args.ways, shots=_ints(args.shots, "shots"), queries=args.queries,
                episodes=args.episodes, base_shots=args.base_shots)


def cmd_grid(args) -> None:
    """A protocol grid: the API function of the command's name (fewshot, base2new, crossdataset, ...)."""
    skip = {"skip_missing": args.skip_missing} if "skip_missing" in args else {}  # all but episodic
    res = getattr(api, args.command)(args.model, **_grid_data(args), **skip, **_common(args, _methods(args)))
    _emit(args, res.summary, res.table())


def cmd_paper_list(args) -> None:
    from .papers.listing import list_text, paper_list  # torch

    entries = paper_list()
    _emit(args, {"entries": entries}, list_text(entries))


def cmd_paper_run(args) -> None:
    from .papers.entries import get_entry
    from .papers.labels import entry_methods
    from .papers.reproduce import paper_run  # torch

    methods = _methods(args) if args.methods else None
    res = paper_run(args.name, args.model, out=args.out, root=args.root, seeds=_ints(args.seeds, "seeds"),
                    methods=methods, stand_ins=args.stand_ins, dry_run=args.dry_run,
                    shots=_ints(args.shots, "shots") if args.shots else None,
                    low_shots=_ints(args.low_shots, "low-shots") if args.low_shots else None,
                    high_shots=_ints(args.high_shots, "high-shots") if args.high_shots else None,
                    episodes=args.episodes, skip_missing=args.skip_missing, device=args.device,
                    progress=not args.quiet, echo=_echo(args),
                    **_settings(args, methods or entry_methods(get_entry(args.name))))
    _emit(args, res.data, res.text)


def cmd_demo(args) -> None:
    methods = _methods(args)
    res = api.demo(methods, dataset=args.dataset, model=args.model, shots=args.shots,
                   seeds=_ints(args.seeds, "seeds"), out=args.out, device=args.device, progress=not args.quiet,
                   echo=_echo(args), **_settings(args, methods))
    _emit(args, res.summary, res.table())


def cmd_datasets(args) -> None:
    for d in api.datasets():
        tag = f"--root {d['folder']}/" if d["needs_root"] else "built in"
        also = f" (also: {', '.join(d['aliases'])})" if d["aliases"] else ""
        print(f"{d['name']:18s} {tag:30s} {d['help']}{also}")
    print("imagefolder:PATH   one sub-folder per class\nhf:NAME_OR_PATH    a Hugging Face datasets dataset")


def cmd_datasets_check(args) -> int:
    kwargs = {"suite": args.suite, "verify": args.verify, "progress": not args.quiet}
    if args.paper:  # a paper's datasets: the papers' layer (it loads torch), imported only when asked for
        from .papers.listing import datasets_check

        res = datasets_check(args.root, args.names, paper=args.paper, **kwargs)
    else:
        res = api.datasets_check(args.root, args.names, **kwargs)
    _emit(args, res.data, res.text())
    return 0 if res.ok else 1


def _print_settings(config: type, skip: set[str] = frozenset()) -> None:
    for f, d, h in describe(config):
        if f not in skip:
            print(f"    {f} = {d!r}: {h}")


def cmd_methods(args) -> None:
    from .method import METHODS, MethodConfig  # torch

    common = {name for name, _, _ in describe(MethodConfig)}
    listed = api.methods(args.model)
    if args.model:
        runs = [m["name"] for m in listed if m["runs"]]
        print(f"on {args.model} (family {listed[0]['family']}): {len(runs)} of {len(listed)} methods run (+); the "
              "others (-) do not:")
    for m in listed:
        preset = f"  [preset of {m['base']}: {', '.join(f'{k}={v}' for k, v in m['preset'].items())}]" if m["preset"] else ""
        mark = ("+ " if m["runs"] else "- ") if args.model else ""
        print(f"{mark}{m['name']:16s} {m['help']}{preset}")
        if args.details and not m["preset"]:
            cls = METHODS.get(m["name"]).cls
            _print_settings(cls.Config, skip=common)
            r = cls.recipe
            if r.settings:
                print(f"    recipe {r.name}: " + ", ".join(f"{k}={v}" for k, v in r.settings.items()))
            if r.rules:
                print(f"    rules: {' '.join((r.rules.__doc__ or '').split())}")
            print(f"    source: {r.source}")
    for why in dict.fromkeys(m["why"] for m in listed if args.model and not m["runs"]):
        print(f"(-) {why}")
    if args.details:
        print("settings of every method:")
        _print_settings(MethodConfig)
        print("training settings (every method; its recipe sets its own defaults):")
        _print_settings(TrainConfig)


Arg = tuple[tuple[str, ...], dict[str, Any]]


def arg(*flags: str, **kw: Any) -> Arg:
    """One `add_argument(*flags, **kw)` of a command."""
    return flags, kw


THREADS = arg("--threads", type=int, help="CPU threads for torch (default: OMP_NUM_THREADS when set, else the cores "
                                          "not busy with other processes, at most 4)")
SET = arg("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
          help="override a method or training setting (repeatable); see `clipfit methods --details`")
JSON = arg("--json", action="store_true", help="print one JSON object on stdout")
QUIET = arg("--quiet", action="store_true", help="no progress bars")
SKIP_MISSING = arg("--skip-missing", action="store_true",
                   help="list a dataset missing under --root as missing instead of stopping")
SUITE_NAMES = ", ".join(SUITES)


def run_args(shots: int | None = 16, dataset: bool = True, template: bool = True) -> list[Arg]:
    """What every command that trains takes: the model, the data, settings, device, output."""
    return [arg("--model", default=EMBEDDED_MODEL, help="Hugging Face hub id or local directory of a CLIP model "
                                                        f"(default: the embedded {EMBEDDED_MODEL})"),
            *([arg("--dataset", help="catalogue name (see `clipfit datasets`), imagefolder:PATH or hf:NAME_OR_PATH")]
              if dataset else []),
            arg("--root", help="folder holding the datasets in CoOp's layout (catalogue datasets read from disk)"),
            *([arg("--shots", type=int, default=shots, help="training images per class (0: all)")]
              if shots is not None else []),
            *([arg("--template", help="prompt template with {} for the class name (default: the dataset's)")]
              if template else []),
            SET, arg("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)"), THREADS, JSON, QUIET]


def grid_args(shots: int | None, dataset: bool = True, methods: str = "zeroshot,clipfit", skip: bool = True) -> list[Arg]:
    """What every protocol grid takes: the run arguments, methods x seeds, the folder, and how the runs execute."""
    return [*run_args(shots, dataset),
            arg("--methods", default=methods, help=f"comma-separated methods (default: {methods})"),
            arg("--seeds", default="1,2,3", help="comma-separated seeds"),
            arg("--out", required=True, help="folder for the runs and results.json (finished runs are reused)"),
            *([SKIP_MISSING] if skip else []),
            arg("--dry-run", action="store_true", help="list every run (datasets that cannot be read included, each "
                "with what to fetch), its settings and status, and estimate the time from a measured step; trains "
                "nothing"),
            arg("--executor", choices=("local", "ray"), default="local", help="local: the runs one after another in "
                "this process; ray: each run a Ray task (pip install 'clipfit[ray]')"),
            arg("--address", help="with --executor ray: the cluster to join ('auto', 'ray://HOST:10001'; default: a "
                                  "local one)")]


@dataclass(frozen=True)
class Command:
    """A command or an action of one (`paper run`): help, handler, arguments, parser defaults, its own actions."""

    name: str
    help: str
    func: Callable[[argparse.Namespace], int | None] | None
    args: list[Arg] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)
    actions: tuple[Command, ...] = ()
    optional_actions: bool = False


GRID_DATASETS = arg("--datasets", help="several datasets in one grid, comma-separated, or a suite: "
                                       f"{SUITE_NAMES} (the table gets the papers' Average row)")
GRID_SHOTS = arg("--shots", default="16", help="training images per class, comma-separated for several (0: all)")
COMMANDS = [
    Command("train", "adapt a model to a dataset; writes a run directory", cmd_train, [
        *run_args(), arg("--method", default="clipfit", help="adaptation method (see `clipfit methods`)"),
        arg("--seed", type=int, default=1, help="seed of the few-shot draw and of training"),
        arg("--subsample", default="all", choices=["all", "base", "new"], help="classes: all, base half, new half"),
        arg("--protocol", default="", choices=["", *PROTOCOLS], help="protocol whose paper defaults to use "
            "(default: fewshot for --subsample all, else base2new)"),
        arg("--items", help="items.json of an earlier run: train on exactly its images"),
        arg("--out", required=True, help="run directory to create"),
        arg("--overwrite", action="store_true", help="replace an existing run directory"),
        arg("--resume", action="store_true", help="continue an interrupted run in --out from its last epoch"),
        arg("--no-test", action="store_true", help="do not evaluate on the test split after training"),
        arg("--log", choices=["tensorboard"], help="also write the training curves as TensorBoard event files in "
            "RUN_DIR/tensorboard/ (same as --set log=tensorboard)")]),
    Command("analyze", "figures (PNG) and their data (CSV) of runs and protocol grids", cmd_analyze, [
        arg("paths", nargs="+", metavar="RUN", help="run directories and/or protocol folders (results.json)"),
        arg("--out", required=True, help="folder for the figures and their data"),
        arg("--layers", default="1", help="layers whose change per step is drawn (as ln_layers: 1,12 / last3)"),
        arg("--tsne", type=int, default=0, metavar="N", help="also a t-SNE of up to N test images' features, "
            "zero-shot beside each run (needs scikit-learn)"),
        arg("--drift", action="store_true", help="also text_drift.csv: how far each run's class text features moved "
            "from zero-shot (1 - cos; split into the part common to every class and the class-specific rest)"),
        arg("--towers", action="store_true", help="also towers.csv: test accuracy with each encoder tuned or zero-shot "
            "(tuned image + zero-shot text, and the reverse), on the run's classes and the other half's: which tower "
            "forgot"),
        arg("--device"), arg("--json", action="store_true")]),
    Command("eval", "accuracy of a run on a dataset split", cmd_eval, [
        arg("run_dir"), arg("--dataset", help="dataset (default: the run's own)"), arg("--root"),
        arg("--subsample", choices=["all", "base", "new"]),
        arg("--split", default="test", choices=["test", "val", "train"]), arg("--device"), THREADS,
        arg("--json", action="store_true"), arg("--quiet", action="store_true")]),
    Command("predict", "top-k classes of image files", cmd_predict, [
        arg("run_dir"), arg("images", nargs="+"),
        arg("--classes", help="class names: a file (one per line) or 'a,b,c' (default: the run's classes)"),
        arg("--topk", type=int, default=5), arg("--device"), THREADS, arg("--json", action="store_true")]),
    Command("export", "write the tuned model as a plain transformers checkpoint of its own class", cmd_export, [
        arg("run_dir"), arg("--merged", required=True, metavar="OUT_DIR"), arg("--overwrite", action="store_true")]),
    Command("params", "trainable parameter count of a method (random init, no download)", cmd_params, [
        arg("method"), arg("--arch", default="ViT-B/16", choices=[*ARCHS, *FAMILY_ARCHS]),
        arg("--classes", type=int, default=10, help="number of classes (for class-specific methods)"),
        arg("--shots", type=int, default=16, help="training images per class (for methods that grow with the "
                                                  "training set: Tip-Adapter-F)"),
        arg("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE"),
        arg("--json", action="store_true")]),
    *(Command(name, hlp, cmd_grid, [*grid_args(None), GRID_DATASETS, GRID_SHOTS])
      for name, hlp in (("fewshot", "few-shot protocol: datasets x shots x methods x seeds, test accuracy"),
                        ("base2new", "base-to-new protocol: train on base classes, test on base and new, HM"))),
    *(Command(name, hlp, cmd_grid, [
        *grid_args(16, dataset=False), arg("--source", default="imagenet", help="dataset trained on (default: imagenet)"),
        arg("--targets", default=targets, help=f"comma-separated datasets or a suite (default: {targets})")])
      for name, hlp, targets in (
        ("crossdataset", "cross-dataset transfer: train on --source, test on every target (CLIPFit Table 9)", "coop10"),
        ("domainshift", "domain shift: train on --source, test on its shifted versions (CLIPFit Table 3)",
         "imagenet_shifts"))),
    Command("regimes", "the LayerNorm-tuning paper's low/high-data x low/high-similarity regimes", cmd_grid, [
        *grid_args(None, dataset=False, methods="zeroshot,linear_probe,prompt,layernorm,adapter,compacter,full"),
        arg("--datasets", default="layernorm10", help="comma-separated datasets or a suite (default: layernorm10)"),
        arg("--regimes", default="low,high", help="low (1-16 shots), high (256/512 shots), or both"),
        arg("--low-shots", help="shot counts of the low-data regime (default: 1,2,4,8,16)"),
        arg("--high-shots", help="shot counts of the high-data regime (default: 256,512; CIFAR-100 256,450)")]),
    Command("episodic", "episodic few-shot: adapt on base classes, Classifier-Baseline episodes on novel ones",
            cmd_grid, [
        *grid_args(None, methods="zeroshot,layernorm", skip=False), arg("--ways", type=int, default=5),
        arg("--shots", default="1,5", help="support images per class in an episode, comma-separated"),
        arg("--queries", type=int, default=15, help="query images per class in an episode"),
        arg("--episodes", type=int, default=600, help="episodes per seed"),
        arg("--base-shots", type=int, default=0, help="training images per base class in stage one (0: all)")]),
    Command("paper", "the papers' tables and figures: list them, run one (ours beside the paper's)", None, actions=(
        Command("list", "every table and figure, with the runs each needs", cmd_paper_list,
                [arg("--json", action="store_true")]),
        Command("run", "run or resume one table or figure, print it beside the paper's numbers", cmd_paper_run, [
            arg("name", help="a name of `clipfit paper list`, e.g. clipfit:table1"),
            *run_args(None, dataset=False, template=False),  # --set applies to every run of the table
            arg("--out", required=True, help="folder: runs in OUT/<protocol>/ (reused), tables in OUT/tables/, "
                                             "figures in OUT/figures/"),
            arg("--seeds", default="1,2,3", help="comma-separated seeds (default: the papers' 1,2,3)"),
            arg("--methods", help="only these of the table's methods (comma-separated; the others: not run)"),
            arg("--stand-ins", dest="stand_ins", action="store_const", const=True, default=None,
                help="run on synthetic stand-ins of the paper's datasets, on the embedded model unless --model "
                     "(without it: the real datasets under --root, on the paper's backbone "
                     "openai/clip-vit-base-patch16 unless --model)"),
            arg("--no-stand-ins", dest="stand_ins", action="store_const", const=False,
                help="the real datasets (the default)"),
            arg("--shots", help="shot counts instead of the paper's (fewshot, base2new, transfer, episodic)"),
            arg("--low-shots", help="low-data regime shot counts instead of the paper's (regimes)"),
            arg("--high-shots", help="high-data regime shot counts instead of the paper's (regimes)"),
            arg("--episodes", type=int, help="episodes per seed instead of the paper's 600 (episodic)"), SKIP_MISSING,
            arg("--dry-run", action="store_true", help="list every run of the table (datasets that cannot be read "
                "included, each with what to fetch), its settings and status, and estimate the time from measured "
                "steps; trains nothing")],
            defaults={"model": None}))),  # the paper's backbone, or the embedded model with --stand-ins
    Command("demo", "base-to-new on the embedded model: zero-shot, CoOp, KgCoOp, CLIPFit on a task where tuning gains "
                    "and can forget (no download)", cmd_demo, [
        *run_args(), arg("--methods", default=",".join(api.DEMO_METHODS), help="comma-separated methods (default "
                                                                            "%(default)s)"),
        arg("--seeds", default="1,2,3"), arg("--out", help="keep the runs here (default: a temporary folder)")],
        defaults={"dataset": api.DEMO_DATASET}),
    Command("datasets", "list the dataset catalogue; `clipfit datasets check --root DIR`: what is there, what is "
                        "missing and where to get it", cmd_datasets, optional_actions=True, actions=(
        Command("check", "which datasets are under --root, which are missing or incomplete, and what to fetch from "
                         "where (exit status 1 when one asked for is not there whole)", cmd_datasets_check, [
            arg("names", nargs="*", metavar="NAME", help="datasets or suites (default: every dataset read from --root)"),
            arg("--root", required=True, help="the folder holding the datasets"),
            arg("--suite", help=f"the datasets of a suite: {SUITE_NAMES}"),
            arg("--paper", metavar="TABLE", help="the datasets a table or figure of `clipfit paper list` needs"),
            arg("--verify", action="store_true", help="also decode every image (slow: minutes per dataset)"),
            arg("--json", action="store_true"), QUIET]),)),
    Command("methods", "list the methods", cmd_methods,
            [arg("--details", action="store_true", help="show every setting with its default and help"),
             arg("--model", help="mark the methods that run on this model's family (+) and say why the others do "
                                 "not (-); a hub id or folder, read from its config.json alone")]),
    Command("convert-openclip", "write a transformers folder clipfit loads for an OpenCLIP checkpoint of a plain "
                                "CLIP ViT (LAION, DFN, MetaCLIP; no open_clip needed)", cmd_convert_openclip, [
        arg("checkpoint", help="the OpenCLIP weights: .safetensors, .bin or .pt (a training checkpoint too)"),
        arg("out", help="folder to create (new, or empty: nothing is replaced)"),
        arg("--activation", required=True, choices=["quick_gelu", "gelu"], help="not in the weights: quick_gelu for "
            "OpenAI's, MetaCLIP's and DFN's weights and OpenCLIP model names ending in -quickgelu, gelu otherwise"),
        arg("--tokenizer", help="folder with the model's tokenizer: CLIP's vocab.json and merges.txt, or a saved "
                                "transformers tokenizer (the checkpoint carries none)"),
        arg("--mean", help="image normalisation mean, 3 comma-separated numbers (default: OpenAI CLIP's)"),
        arg("--std", help="image normalisation std, 3 comma-separated numbers (default: OpenAI CLIP's)"),
        arg("--vision-heads", type=int, help="attention heads of the image tower (default: width / 64; 16 for "
                                             "ViT-H, ViT-g, ViT-bigG)"),
        arg("--text-heads", type=int, help="attention heads of the text tower (default: width / 64)")]),
]


def add_command(sub, c: Command) -> None:
    """The parser of command `c` (and of its actions) on argparse subparsers `sub`."""
    p = sub.add_parser(c.name, help=c.help)
    for flags, kw in c.args:
        p.add_argument(*flags, **kw)
    p.set_defaults(**c.defaults, **({"func": c.func} if c.func else {}))
    if c.actions:
        actions = p.add_subparsers(dest=f"{c.name}_command", required=not c.optional_actions, metavar="ACTION")
        for a in c.actions:
            add_command(actions, a)


def build_parser(pretrain_args: bool = True) -> argparse.ArgumentParser:
    """The parser; `pretrain_args=False` lists `pretrain-mini` without its arguments (which import torch)."""
    ap = argparse.ArgumentParser(prog="clipfit", description="Adapt CLIP models to few-shot image classification.")
    ap.add_argument("--version", action=VersionAction)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for c in COMMANDS:
        add_command(sub, c)
    if not pretrain_args:
        sub.add_parser("pretrain-mini", help="pretrain the small embedded CLIP on the synthetic world")
        return ap
    try:
        from . import pretrain  # torch and transformers: only for `clipfit pretrain-mini`

        pretrain.add_parser(sub)
    except (ImportError, AttributeError):
        pass
    return ap


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a job scheduler's stop), handled as Ctrl-C: the run stops where it is, keeps its checkpoint
    and releases its lock."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(pretrain_args="pretrain-mini" in argv).parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        if "threads" in args:  # a command that runs a model: threads are set here, once
            set_threads(args.threads)
        rc = args.func(args)
    except ClipfitError as e:
        print(f"clipfit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        hint = ""
        if args.command == "train":
            from .engine.rundir import RunDir  # torch

            hint = f"; continue with `clipfit train --out {args.out} --resume`" if RunDir(args.out).has_checkpoint else ""
        term = isinstance(e, Terminated)
        print(f"clipfit: {'terminated (SIGTERM)' if term else 'interrupted'}{hint}", file=sys.stderr)
        return 143 if term else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return rc or 0


def run() -> None:
    """The `clipfit` command (and `python -m clipfit.cli`): `main`, then what a normal exit does (wait for running
    threads, run the exit handlers, flush the output), then the end of the process without unloading the thousands
    of modules torch and transformers bring, one by one: about 2 s spent on nothing (benchmarks/bench_startup.py)."""
    try:
        code = main()
    except SystemExit as e:  # argparse: --help, --version, usage errors
        code = e.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's and PyPy's
    if run_exit_handlers is None:
        sys.exit(code)
    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            t.join()
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`clipfit methods | head -1`): nothing more to say
            pass
    os._exit(code or 0)


if __name__ == "__main__":
    run()

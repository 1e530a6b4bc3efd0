"""The `clipfit` command line, a thin layer over the Python API (`clipfit.api`): it parses arguments (and `--set`
strings into typed settings), calls the API and prints. User mistakes end as one line on stderr and exit status 2,
never a traceback."""
from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
import threading

from .api import DEMO_DATASET, DEMO_METHODS
from .errors import ClipfitError
from .hub import ARCHS, EMBEDDED_MODEL  # not .backbone: that imports torch (slow to start)
from .recipes import PROTOCOLS


def _add_run_args(p: argparse.ArgumentParser, shots: int | None = 16, dataset: bool = True,
                  template: bool = True) -> None:
    p.add_argument("--model", default=EMBEDDED_MODEL,
                   help=f"Hugging Face hub id or local directory of a CLIP model (default: the embedded {EMBEDDED_MODEL})")
    if dataset:
        p.add_argument("--dataset", help="catalogue name (see `clipfit datasets`), imagefolder:PATH or hf:NAME_OR_PATH")
    p.add_argument("--root", help="folder holding the datasets in CoOp's layout (catalogue datasets read from disk)")
    if shots is not None:
        p.add_argument("--shots", type=int, default=shots, help="training images per class (0: all)")
    if template:
        p.add_argument("--template", help="prompt template with {} for the class name (default: the dataset's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a method or training setting (repeatable); see `clipfit methods --details`")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    _add_threads_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: OMP_NUM_THREADS when set, else the "
                                               "cores not busy with other processes, at most 4)")


def build_parser(pretrain_args: bool = True) -> argparse.ArgumentParser:
    """The parser; `pretrain_args=False` lists `pretrain-mini` without its arguments (which import torch)."""
    ap = argparse.ArgumentParser(prog="clipfit", description="Adapt CLIP models to few-shot image classification.")
    ap.add_argument("--version", action="version", version=f"clipfit {__import__('clipfit').__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="adapt a model to a dataset; writes a run directory")
    _add_run_args(p)
    p.add_argument("--method", default="clipfit", help="adaptation method (see `clipfit methods`)")
    p.add_argument("--seed", type=int, default=1, help="seed of the few-shot draw and of training")
    p.add_argument("--subsample", default="all", choices=["all", "base", "new"], help="classes: all, base half, new half")
    p.add_argument("--protocol", default="", choices=["", *PROTOCOLS],
                   help="protocol whose paper defaults to use (default: fewshot for --subsample all, else base2new)")
    p.add_argument("--items", help="items.json of an earlier run: train on exactly its images")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out from its last epoch")
    p.add_argument("--no-test", action="store_true", help="do not evaluate on the test split after training")
    p.add_argument("--log", choices=["tensorboard"], help="also write the training curves as TensorBoard event files "
                   "in RUN_DIR/tensorboard/ (same as --set log=tensorboard)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("analyze", help="figures (PNG) and their data (CSV) of runs and protocol grids")
    p.add_argument("paths", nargs="+", metavar="RUN", help="run directories and/or protocol folders (results.json)")
    p.add_argument("--out", required=True, help="folder for the figures and their data")
    p.add_argument("--layers", default="1", help="layers whose change per step is drawn (as ln_layers: 1,12 / last3)")
    p.add_argument("--tsne", type=int, default=0, metavar="N",
                   help="also a t-SNE of up to N test images' features, zero-shot beside each run (needs scikit-learn)")
    p.add_argument("--drift", action="store_true",
                   help="also text_drift.csv: how far each run's class text features moved from zero-shot (1 - cos; "
                        "split into the part common to every class and the class-specific rest)")
    p.add_argument("--towers", action="store_true",
                   help="also towers.csv: test accuracy with each encoder tuned or zero-shot (tuned image + zero-shot "
                        "text, and the reverse), on the run's classes and the other half's: which tower forgot")
    p.add_argument("--device")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("eval", help="accuracy of a run on a dataset split")
    p.add_argument("run_dir")
    p.add_argument("--dataset", help="dataset (default: the run's own)")
    p.add_argument("--root")
    p.add_argument("--subsample", choices=["all", "base", "new"])
    p.add_argument("--split", default="test", choices=["test", "val", "train"])
    p.add_argument("--device")
    _add_threads_arg(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k classes of image files")
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+")
    p.add_argument("--classes", help="class names: a file (one per line) or 'a,b,c' (default: the run's classes)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--device")
    _add_threads_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="write the tuned model as a plain transformers CLIP checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--merged", required=True, metavar="OUT_DIR")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("params", help="trainable parameter count of a method (random init, no download)")
    p.add_argument("method")
    p.add_argument("--arch", default="ViT-B/16", choices=list(ARCHS))
    p.add_argument("--classes", type=int, default=10, help="number of classes (for class-specific methods)")
    p.add_argument("--shots", type=int, default=16, help="training images per class (for methods that grow with "
                                                         "the training set: Tip-Adapter-F)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_params)

    for name, hlp in (("fewshot", "few-shot protocol: datasets x shots x methods x seeds, test accuracy"),
                      ("base2new", "base-to-new protocol: train on base classes, test on base and new, HM")):
        p = sub.add_parser(name, help=hlp)
        _add_grid_args(p, shots=None)
        p.add_argument("--datasets", help="several datasets in one grid, comma-separated, or a suite: "
                                          + ", ".join(_suites()) + " (the table gets the papers' Average row)")
        p.add_argument("--shots", default="16", help="training images per class, comma-separated for several (0: all)")
        p.set_defaults(func=lambda a, proto=name: cmd_grid(a, proto))

    for name, hlp, targets in (
            ("crossdataset", "cross-dataset transfer: train on --source, test on every target (CLIPFit Table 9)",
             "coop10"),
            ("domainshift", "domain shift: train on --source, test on its shifted versions (CLIPFit Table 3)",
             "imagenet_shifts")):
        p = sub.add_parser(name, help=hlp)
        _add_grid_args(p, shots=16, dataset=False)
        p.add_argument("--source", default="imagenet", help="dataset trained on (default: imagenet)")
        p.add_argument("--targets", default=targets, help=f"comma-separated datasets or a suite (default: {targets})")
        p.set_defaults(func=lambda a, proto=name: cmd_transfer(a, proto))

    p = sub.add_parser("regimes", help="the LayerNorm-tuning paper's low/high-data x low/high-similarity regimes")
    _add_grid_args(p, shots=None, dataset=False, methods="zeroshot,linear_probe,prompt,layernorm,adapter,compacter,full")
    p.add_argument("--datasets", default="layernorm10", help="comma-separated datasets or a suite (default: layernorm10)")
    p.add_argument("--regimes", default="low,high", help="low (1-16 shots), high (256/512 shots), or both")
    p.add_argument("--low-shots", help="shot counts of the low-data regime (default: 1,2,4,8,16)")
    p.add_argument("--high-shots", help="shot counts of the high-data regime (default: 256,512; CIFAR-100 256,450)")
    p.set_defaults(func=cmd_regimes)

    p = sub.add_parser("episodic", help="episodic few-shot: adapt on base classes, Classifier-Baseline episodes on novel ones")
    _add_grid_args(p, shots=None, methods="zeroshot,layernorm", skip=False)
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", default="1,5", help="support images per class in an episode, comma-separated")
    p.add_argument("--queries", type=int, default=15, help="query images per class in an episode")
    p.add_argument("--episodes", type=int, default=600, help="episodes per seed")
    p.add_argument("--base-shots", type=int, default=0, help="training images per base class in stage one (0: all)")
    p.set_defaults(func=cmd_episodic)

    p = sub.add_parser("paper", help="the papers' tables and figures: list them, run one (ours beside the paper's)")
    psub = p.add_subparsers(dest="paper_command", required=True, metavar="ACTION")
    q = psub.add_parser("list", help="every table and figure, with the runs each needs")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_paper_list)
    q = psub.add_parser("run", help="run or resume one table or figure, print it beside the paper's numbers")
    q.add_argument("name", help="a name of `clipfit paper list`, e.g. clipfit:table1")
    _add_run_args(q, shots=None, dataset=False, template=False)  # --set applies to every run of the table
    q.set_defaults(model=None)  # the paper's backbone, or the embedded model with --stand-ins (`choose_model`)
    q.add_argument("--out", required=True, help="folder: runs in OUT/<protocol>/ (reused), tables in OUT/tables/, "
                                                "figures in OUT/figures/")
    q.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default: the papers' 1,2,3)")
    q.add_argument("--methods", help="only these of the table's methods (comma-separated; the others: not run)")
    q.add_argument("--stand-ins", dest="stand_ins", action="store_const", const=True, default=None,
                   help="run on synthetic stand-ins of the paper's datasets, on the embedded model unless --model "
                        "(without it: the real datasets under --root, on the paper's backbone "
                        "openai/clip-vit-base-patch16 unless --model)")
    q.add_argument("--no-stand-ins", dest="stand_ins", action="store_const", const=False,
                   help="the real datasets (the default)")
    q.add_argument("--shots", help="shot counts instead of the paper's (fewshot, base2new, transfer, episodic)")
    q.add_argument("--low-shots", help="low-data regime shot counts instead of the paper's (regimes)")
    q.add_argument("--high-shots", help="high-data regime shot counts instead of the paper's (regimes)")
    q.add_argument("--episodes", type=int, help="episodes per seed instead of the paper's 600 (episodic)")
    q.add_argument("--skip-missing", action="store_true",
                   help="list a dataset missing under --root as missing instead of stopping")
    q.add_argument("--dry-run", action="store_true",
                   help="list every run of the table (datasets that cannot be read included, each with what to "
                        "fetch), its settings and status, and estimate the time from measured steps; trains nothing")
    q.set_defaults(func=cmd_paper_run)

    p = sub.add_parser("demo", help="base-to-new on the embedded model: zero-shot, CoOp, KgCoOp, CLIPFit on a task "
                                     "where tuning gains and can forget (no download)")
    _add_run_args(p)
    p.set_defaults(dataset=DEMO_DATASET)
    p.add_argument("--methods", default=",".join(DEMO_METHODS), help="comma-separated methods (default %(default)s)")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("datasets", help="list the dataset catalogue; `clipfit datasets check --root DIR`: what is "
                                        "there, what is missing and where to get it")
    p.set_defaults(func=cmd_datasets)
    q = p.add_subparsers(dest="datasets_command", metavar="ACTION").add_parser(
        "check", help="which datasets are under --root, which are missing or incomplete, and what to fetch from where "
                      "(exit status 1 when one asked for is not there whole)")
    q.add_argument("names", nargs="*", metavar="NAME", help="datasets or suites (default: every dataset read from --root)")
    q.add_argument("--root", required=True, help="the folder holding the datasets")
    q.add_argument("--suite", help="the datasets of a suite: " + ", ".join(_suites()))
    q.add_argument("--paper", metavar="TABLE", help="the datasets a table or figure of `clipfit paper list` needs")
    q.add_argument("--verify", action="store_true", help="also decode every image (slow: minutes per dataset)")
    q.add_argument("--json", action="store_true")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(func=cmd_datasets_check)
    p = sub.add_parser("methods", help="list the methods")
    p.add_argument("--details", action="store_true", help="show every setting with its default and help")
    p.set_defaults(func=cmd_methods)

    if not pretrain_args:
        sub.add_parser("pretrain-mini", help="pretrain the small embedded CLIP on the synthetic world")
        return ap
    try:
        from . import pretrain

        pretrain.add_parser(sub)
    except (ImportError, AttributeError):
        pass
    return ap


def _add_grid_args(p: argparse.ArgumentParser, shots: int | None, dataset: bool = True,
                   methods: str = "zeroshot,clipfit", skip: bool = True) -> None:
    _add_run_args(p, shots, dataset)
    p.add_argument("--methods", default=methods, help=f"comma-separated methods (default: {methods})")
    p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    p.add_argument("--out", required=True, help="folder for the runs and results.json (finished runs are reused)")
    if skip:
        p.add_argument("--skip-missing", action="store_true",
                       help="list a dataset missing under --root as missing instead of stopping")
    p.add_argument("--dry-run", action="store_true",
                   help="list every run (datasets that cannot be read included, each with what to fetch), its "
                        "settings and status, and estimate the time from a measured step; trains nothing")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: the runs one after another in this process; ray: each run a Ray task (pip install "
                        "'clipfit[ray]')")
    p.add_argument("--address", help="with --executor ray: the cluster to join ('auto', 'ray://HOST:10001'; default: "
                                      "a local one)")


def _suites() -> list[str]:
    from .data.registry import SUITES  # not protocols: that imports torch

    return list(SUITES)


def _ints(s: str, what: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ClipfitError(f"--{what} expects comma-separated integers, got {s!r}") from None


def _emit(args, obj, text: str) -> None:
    print(json.dumps(obj) if args.json else text)


def _settings(args, methods: list[str]) -> dict:
    """The typed settings of the command's `--set key=value` strings (the only place they are parsed)."""
    from .config import TrainConfig, parse_settings
    from .method import METHODS

    return parse_settings(args.overrides, [METHODS.get(p).cls.Config for m in methods for p in m.split("@")]
                          + [TrainConfig])


def _echo(args):
    return (lambda s: print(s, file=sys.stderr)) if not args.quiet else (lambda s: None)


def _need_dataset(args) -> None:
    if not args.dataset:
        raise ClipfitError(f"clipfit {args.command} needs --dataset (see `clipfit datasets`)")


def cmd_train(args) -> None:
    from . import api

    if not args.resume:
        _need_dataset(args)
    settings = _settings(args, [args.method]) if not args.resume else {}
    if args.log:
        settings["log"] = args.log
    run = api.train(args.model, dataset=args.dataset, out=args.out, method=args.method, shots=args.shots,
                    seed=args.seed, root=args.root, subsample=args.subsample, protocol=args.protocol,
                    template=args.template, items=args.items, device=args.device, overwrite=args.overwrite,
                    resume=args.resume, test=not args.no_test, progress=not args.quiet, **settings)
    from .engine import distributed

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
    from .analyses import analyze

    files = analyze(args.paths, args.out, args.tsne, args.layers, args.device, args.drift, args.towers)
    _emit(args, {"files": [str(f) for f in files]}, "\n".join(map(str, files)) or "nothing to draw")


def cmd_eval(args) -> None:
    from . import api

    r = api.load(args.run_dir, args.device).evaluate(args.dataset, args.root, args.subsample, args.split,
                                                     progress=not args.quiet)
    _emit(args, r, f"{r['dataset']} ({r['subsample']}, {r['split']}): accuracy {r['accuracy']:.2f} (n={r['n']})")


def cmd_predict(args) -> None:
    from . import api
    from .engine.use import read_classes

    out = api.load(args.run_dir, args.device).predict(args.images, read_classes(args.classes) if args.classes else None,
                                                      args.topk)
    text = "\n".join(f"{r['image']}: " + ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top"]) for r in out)
    _emit(args, {"predictions": out}, text)


def cmd_export(args) -> None:
    from . import api

    print(f"wrote {api.load(args.run_dir, 'cpu').export(args.merged, args.overwrite)}")


def cmd_params(args) -> None:
    from . import api

    r = api.params(args.method, args.arch, args.classes, args.shots, **_settings(args, [args.method]))
    _emit(args, r, str(r["trainable"]))


def _methods(args) -> list[str]:
    return [m.strip() for m in args.methods.split(",") if m.strip()]


def _common(args, methods: list[str]) -> dict:
    """The keyword arguments every grid of the API takes, from the command's arguments."""
    from .protocols.executors import make_executor

    return dict(out=args.out, methods=methods, seeds=_ints(args.seeds, "seeds"), root=args.root, template=args.template,
                device=args.device, progress=not args.quiet, echo=_echo(args),
                executor=make_executor(args.executor, args.address), dry_run=args.dry_run, **_settings(args, methods))


def cmd_grid(args, protocol: str) -> None:
    from . import api

    if bool(args.dataset) == bool(args.datasets):
        raise ClipfitError(f"clipfit {protocol} needs --dataset or --datasets (one of them; see `clipfit datasets`)")
    methods = _methods(args)
    grid = api.fewshot if protocol == "fewshot" else api.base2new
    res = grid(args.model, dataset=args.dataset, datasets=args.datasets, shots=_ints(args.shots, "shots"),
               skip_missing=args.skip_missing, **_common(args, methods))
    _emit(args, res.summary, res.table())


def cmd_transfer(args, protocol: str) -> None:
    from . import api

    methods = _methods(args)
    run = api.crossdataset if protocol == "crossdataset" else api.domainshift
    res = run(args.model, source=args.source, targets=args.targets, shots=args.shots, skip_missing=args.skip_missing,
              **_common(args, methods))
    _emit(args, res.summary, res.table())


def cmd_regimes(args) -> None:
    from . import api

    methods = _methods(args)
    res = api.regimes(args.model, datasets=args.datasets, regimes=[r.strip() for r in args.regimes.split(",") if r.strip()],
                      low_shots=_ints(args.low_shots, "low-shots") if args.low_shots else None,
                      high_shots=_ints(args.high_shots, "high-shots") if args.high_shots else None,
                      skip_missing=args.skip_missing, **_common(args, methods))
    _emit(args, res.summary, res.table())


def cmd_episodic(args) -> None:
    from . import api

    _need_dataset(args)
    methods = _methods(args)
    res = api.episodic(args.model, dataset=args.dataset, ways=args.ways, shots=_ints(args.shots, "shots"),
                       queries=args.queries, episodes=args.episodes, base_shots=args.base_shots, **_common(args, methods))
    _emit(args, res.summary, res.table())


def cmd_paper_list(args) -> None:
    from .papers.listing import list_text, paper_list

    entries = paper_list()
    _emit(args, {"entries": entries}, list_text(entries))


def cmd_paper_run(args) -> None:
    from .papers.entries import get_entry
    from .papers.labels import entry_methods
    from .papers.reproduce import paper_run

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
    from . import api

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    res = api.demo(methods, dataset=args.dataset, model=args.model, shots=args.shots,
                   seeds=_ints(args.seeds, "seeds"), out=args.out, device=args.device, progress=not args.quiet,
                   echo=_echo(args), **_settings(args, methods))
    _emit(args, res.summary, res.table())


def cmd_datasets(args) -> None:
    from . import api

    for d in api.datasets():
        tag = f"--root {d['folder']}/" if d["needs_root"] else "built in"
        also = f" (also: {', '.join(d['aliases'])})" if d["aliases"] else ""
        print(f"{d['name']:18s} {tag:30s} {d['help']}{also}")
    print("imagefolder:PATH   one sub-folder per class\nhf:NAME_OR_PATH    a Hugging Face datasets dataset")


def cmd_datasets_check(args) -> int:
    from .papers.listing import datasets_check

    res = datasets_check(args.root, args.names, suite=args.suite, paper=args.paper, verify=args.verify,
                         progress=not args.quiet)
    _emit(args, res.data, res.text())
    return 0 if res.ok else 1


def cmd_methods(args) -> None:
    from . import api
    from .config import TrainConfig, describe
    from .method import METHODS, MethodConfig

    common = {name for name, _, _ in describe(MethodConfig)}
    for m in api.methods():
        preset = f"  [preset of {m['base']}: {', '.join(f'{k}={v}' for k, v in m['preset'].items())}]" if m["preset"] else ""
        print(f"{m['name']:16s} {m['help']}{preset}")
        if args.details and not m["preset"]:
            cls = METHODS.get(m["name"]).cls
            for f, d, h in describe(cls.Config):
                if f not in common:
                    print(f"    {f} = {d!r}: {h}")
            r = cls.recipe
            if r.settings:
                print(f"    recipe {r.name}: " + ", ".join(f"{k}={v}" for k, v in r.settings.items()))
            if r.rules:
                print(f"    rules: {' '.join((r.rules.__doc__ or '').split())}")
            print(f"    source: {r.source}")
    if args.details:
        print("settings of every method:")
        for f, d, h in describe(MethodConfig):
            print(f"    {f} = {d!r}: {h}")
        print("training settings (every method; its recipe sets its own defaults):")
        for f, d, h in describe(TrainConfig):
            print(f"    {f} = {d!r}: {h}")


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a job scheduler's stop), handled as Ctrl-C: the run stops where it is, keeps its checkpoint
    and releases its lock."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(pretrain_args="pretrain-mini" in argv).parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if "threads" in args:  # a command that runs a model: threads are set here, once
            from .threads import set_threads

            set_threads(args.threads)
        rc = args.func(args)
    except ClipfitError as e:
        print(f"clipfit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        hint = ""
        if args.command == "train":
            from .engine.rundir import RunDir

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

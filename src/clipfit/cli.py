"""The `clipfit` command line. User mistakes end as one line on stderr and exit status 2, never a traceback."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict

from .backbone import ARCHS, EMBEDDED_MODEL
from .errors import ClipfitError


def _add_run_args(p: argparse.ArgumentParser, shots: int = 16) -> None:
    p.add_argument("--model", default=EMBEDDED_MODEL,
                   help=f"Hugging Face hub id or local directory of a CLIP model (default: the embedded {EMBEDDED_MODEL})")
    p.add_argument("--dataset", help="catalogue name (see `clipfit datasets`), imagefolder:PATH or hf:NAME_OR_PATH")
    p.add_argument("--root", help="folder holding the datasets in CoOp's layout (catalogue datasets read from disk)")
    p.add_argument("--shots", type=int, default=shots, help="training images per class (0: all)")
    p.add_argument("--template", help="prompt template with {} for the class name (default: the dataset's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a method or training setting (repeatable); see `clipfit methods --details`")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="clipfit", description="Adapt CLIP models to few-shot image classification.")
    ap.add_argument("--version", action="version", version=f"clipfit {__import__('clipfit').__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="adapt a model to a dataset; writes a run directory")
    _add_run_args(p)
    p.add_argument("--method", default="clipfit", help="adaptation method (see `clipfit methods`)")
    p.add_argument("--seed", type=int, default=1, help="seed of the few-shot draw and of training")
    p.add_argument("--subsample", default="all", choices=["all", "base", "new"], help="classes: all, base half, new half")
    p.add_argument("--protocol", default="", choices=["", "fewshot", "base2new", "crossdataset", "domainshift"],
                   help="protocol whose paper defaults to use (default: fewshot for --subsample all, else base2new)")
    p.add_argument("--items", help="items.json of an earlier run: train on exactly its images")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out from its last epoch")
    p.add_argument("--no-test", action="store_true", help="do not evaluate on the test split after training")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="accuracy of a run on a dataset split")
    p.add_argument("run_dir")
    p.add_argument("--dataset", help="dataset (default: the run's own)")
    p.add_argument("--root")
    p.add_argument("--subsample", choices=["all", "base", "new"])
    p.add_argument("--split", default="test", choices=["test", "val", "train"])
    p.add_argument("--device")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k classes of image files")
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+")
    p.add_argument("--classes", help="class names: a file (one per line) or 'a,b,c' (default: the run's classes)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--device")
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
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_params)

    for name, hlp in (("fewshot", "few-shot protocol: methods x seeds, test accuracy mean ± std"),
                      ("base2new", "base-to-new protocol: train on base classes, test on base and new, HM")):
        p = sub.add_parser(name, help=hlp)
        _add_run_args(p)
        p.add_argument("--methods", default="zeroshot,clipfit", help="comma-separated methods")
        p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
        p.add_argument("--out", required=True, help="folder for the runs and results.json (finished runs are reused)")
        p.set_defaults(func=lambda a, proto=name: cmd_grid(a, proto, [m.strip() for m in a.methods.split(",") if m.strip()]))

    p = sub.add_parser("demo", help="base-to-new with CLIPFit on the embedded model and a shifted task (no download)")
    _add_run_args(p)
    p.set_defaults(dataset="synth_shift")
    p.add_argument("--method", default="clipfit")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("datasets", help="list the dataset catalogue")
    p.set_defaults(func=cmd_datasets)
    p = sub.add_parser("methods", help="list the methods")
    p.add_argument("--details", action="store_true", help="show every setting with its default and help")
    p.set_defaults(func=cmd_methods)

    try:
        from . import pretrain

        pretrain.add_parser(sub)
    except (ImportError, AttributeError):
        pass
    return ap


def _ints(s: str, what: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ClipfitError(f"--{what} expects comma-separated integers, got {s!r}") from None


def _emit(args, obj, text: str) -> None:
    print(json.dumps(obj, indent=None if args.json else 2) if args.json else text)


def _spec(args, method: str):
    from .engine.run import RunSpec

    return RunSpec(dataset=args.dataset, method=method, model=args.model, root=args.root, shots=args.shots,
                   seed=getattr(args, "seed", 1), subsample=getattr(args, "subsample", "all"),
                   protocol=getattr(args, "protocol", ""), template=args.template, overrides=args.overrides,
                   items=getattr(args, "items", None), device=args.device)


def _need_dataset(args) -> None:
    if not args.dataset:
        raise ClipfitError(f"clipfit {args.command} needs --dataset (see `clipfit datasets`)")


def cmd_train(args) -> None:
    from .engine.run import train_run

    if not args.resume:
        _need_dataset(args)
    m = train_run(_spec(args, args.method), args.out, overwrite=args.overwrite, progress=not args.quiet,
                  test=not args.no_test, resume=args.resume)
    m = {k: v for k, v in m.items() if k != "history"}
    test = m.get("test", {}).get(args.subsample, {})
    text = (f"trained {args.method} ({m['trainable_parameters']} parameters) in {m['train_seconds']:.1f}s; "
            f"best epoch {m['best_epoch']}, val {m['val_accuracy'] if m['val_accuracy'] is None else round(m['val_accuracy'], 2)}"
            + (f", test {test['accuracy']:.2f} (n={test['n']})" if test else "") + f"\nrun directory: {args.out}")
    _emit(args, {"run_dir": args.out, **m}, text)


def cmd_eval(args) -> None:
    from .engine.run import eval_run

    r = eval_run(args.run_dir, args.dataset, args.root, args.subsample, args.split, args.device, progress=not args.quiet)
    _emit(args, r, f"{r['dataset']} ({r['subsample']}, {r['split']}): accuracy {r['accuracy']:.2f} (n={r['n']})")


def cmd_predict(args) -> None:
    from .engine.run import load_run
    from .engine.use import predict_images, read_classes

    run = load_run(args.run_dir, args.device)
    out = predict_images(run, args.images, read_classes(args.classes) if args.classes else None, args.topk)
    text = "\n".join(f"{r['image']}: " + ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top"]) for r in out)
    _emit(args, {"predictions": out}, text)


def cmd_export(args) -> None:
    from .engine.use import export_merged

    print(f"wrote {export_merged(args.run_dir, args.merged, args.overwrite)}")


def cmd_params(args) -> None:
    from .engine.use import count_parameters

    r = count_parameters(args.method, args.arch, args.classes, args.overrides)
    _emit(args, r, str(r["trainable"]))


def cmd_grid(args, protocol: str, methods: list[str]) -> dict:
    from .protocols.grid import format_table, run_grid

    _need_dataset(args)
    log = (lambda s: print(s, file=sys.stderr)) if not args.quiet else (lambda s: None)
    summary = run_grid(protocol, _spec(args, methods[0]), methods, _ints(args.seeds, "seeds"), args.out,
                       progress=not args.quiet, echo=log)
    _emit(args, summary, format_table(summary))
    return summary


DEMO_SETTINGS = ["crop_scale=0.5"]  # 32x32 images: CoOp's 0.08 crops often cut the object out


def cmd_demo(args) -> None:
    methods = ["zeroshot"] + ([args.method] if args.method != "zeroshot" else [])
    args.overrides = DEMO_SETTINGS + args.overrides  # the user's --set come later and win
    if not args.quiet:
        print(f"clipfit demo: base-to-new, {', '.join(methods)} on {args.dataset}, {args.shots} shots, seeds {args.seeds}, "
              f"model {args.model}; settings {' '.join(args.overrides)} (paper defaults otherwise)", file=sys.stderr)
    if args.out:
        cmd_grid(args, "base2new", methods)
        return
    with tempfile.TemporaryDirectory(prefix="clipfit-demo-") as tmp:
        args.out = tmp
        cmd_grid(args, "base2new", methods)


def cmd_datasets(args) -> None:
    from .data.catalogue import list_datasets

    entries = list_datasets()
    aliases: dict[str, list[str]] = {}
    for e in entries:
        if e.help.startswith("alias of "):
            aliases.setdefault(e.help.removeprefix("alias of ").strip(), []).append(e.name)
    for e in entries:
        if e.help.startswith("alias of "):
            continue
        tag = "--root" if e.needs_root else "built in"
        also = f" (also: {', '.join(aliases[e.name])})" if e.name in aliases else ""
        print(f"{e.name:18s} {tag:9s} {e.help}{also}")
    print("imagefolder:PATH   one sub-folder per class\nhf:NAME_OR_PATH    a Hugging Face datasets dataset")


def cmd_methods(args) -> None:
    from .config import TrainConfig, describe
    from .methods import METHODS

    for name in METHODS.list():
        cls = METHODS.get(name)
        print(f"{name:14s} {(cls.__doc__ or '').strip().splitlines()[0]}")
        if args.details:
            for f, d, h in describe(cls.Config):
                print(f"    {f} = {d!r}: {h}")
            if cls.train_defaults:
                print("    training defaults: " + ", ".join(f"{k}={v}" for k, v in cls.train_defaults.items()))
    if args.details:
        print("training settings (every method):")
        for f, d, h in describe(TrainConfig):
            print(f"    {f} = {d!r}: {h}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # weight-loading bars; clipfit shows its own progress
    except ImportError:
        pass
    try:
        args.func(args)
    except ClipfitError as e:
        print(f"clipfit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clipfit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Planning the runs of `clipfit paper run`: the protocol call an entry makes with the command's options
(`make_plan`: the model and why, the methods, seeds and protocol arguments, the paper's datasets mapped to their
stand-ins, the datasets an Average is over) and the call itself, through the Python API (`call_protocol`).

Without `--stand-ins` the model is the paper's backbone unless `--model` is given (`choose_model`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import api, recipes
from ..data.catalogue import expand_datasets
from ..errors import ClipfitError
from ..hub import EMBEDDED_MODEL, resolve_model_path
from ..protocols.cells import MissingDatasets
from ..protocols.dryrun import model_missing
from ..protocols.transfer import DEFAULT_TARGETS
from .entries import PAPERS, STAND_IN_ARGS, STAND_INS, Entry, show_arg
from .labels import entry_methods

# the protocol arguments `paper run` can replace (--shots, --low-shots, --high-shots, --episodes), by protocol
PROTOCOL_OVERRIDES = {"fewshot": ("shots",), "base2new": ("shots",), "crossdataset": ("shots",),
                      "domainshift": ("shots",), "regimes": ("low_shots", "high_shots"),
                      "episodic": ("shots", "episodes")}
PROTOCOL_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "fewshot": api.fewshot, "base2new": api.base2new, "crossdataset": api.crossdataset,
    "domainshift": api.domainshift, "regimes": api.regimes, "episodic": api.episodic}


@dataclass
class RunOptions:
    """What `paper run` was asked besides the entry: `clipfit.paper_run`'s arguments, checked."""

    out: Path
    model: str | None
    root: str | None
    seeds: Sequence[int] | None
    methods: Sequence[str] | None
    stand_ins: bool | None
    dry_run: bool
    device: str | None
    progress: bool
    echo: Callable[[str], None]
    skip_missing: bool
    overrides: dict[str, Any]  # protocol arguments replaced (shots, low_shots, high_shots, episodes; None: the paper's)
    settings: dict[str, Any]  # method and training settings (--set)


@dataclass
class Plan:
    """What `paper run` asks of the protocol: the API function's arguments, and how the paper's datasets map onto
    the datasets run (themselves, or their synthetic stand-ins)."""

    entry: Entry
    protocol: str
    model: str
    model_why: str  # why this model (`choose_model`)
    methods: list[str]
    seeds: list[int]
    args: dict[str, Any]  # the protocol's own arguments, datasets already mapped
    datasets: list[str]  # the paper's datasets (real names) of the call
    average: list[str]  # the paper's datasets an Average is over
    stand_ins: dict[str, str] | None  # real -> stand-in, when used
    overridden: dict[str, Any] = field(default_factory=dict)
    adjusted: dict[str, Any] = field(default_factory=dict)  # protocol arguments the stand-ins need

    def used(self, dataset: str) -> str:
        return self.stand_ins.get(dataset, dataset) if self.stand_ins else dataset

    @property
    def runs_dir_name(self) -> str:
        return self.protocol


def choose_model(entry: Entry, model: str | None, stand_ins: bool | None) -> tuple[str, str]:
    """(model, why): `--model` if given, else the embedded model with `--stand-ins`, else the paper's backbone."""
    if model:
        return model, "--model"
    if stand_ins:
        return EMBEDDED_MODEL, "the embedded model, for --stand-ins; --model to change"
    paper = PAPERS[entry.paper]
    return paper.model, "the paper's backbone, the default without --stand-ins; --model to change"


def _chosen_methods(entry: Entry, methods: Sequence[str] | None) -> list[str]:
    every = entry_methods(entry)
    if not methods:
        return every
    unknown = [m for m in methods if m not in every]
    if unknown:
        raise ClipfitError(f"--methods {unknown[0]}: {entry.name} runs {', '.join(every)}")
    return [m for m in every if m in methods]


def _checked_overrides(entry: Entry, protocol: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The protocol arguments the command replaces, each one the protocol takes."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    allowed = PROTOCOL_OVERRIDES[protocol]
    for k in overrides:
        if k not in allowed:
            raise ClipfitError(f"--{k.replace('_', '-')}: {entry.name} runs the {protocol} protocol, which takes "
                               f"{', '.join('--' + a.replace('_', '-') for a in allowed)}")
    if "shots" in overrides and protocol in ("crossdataset", "domainshift"):
        if len(overrides["shots"]) != 1:
            raise ClipfitError(f"--shots: {entry.name} trains on one shot count")
        overrides["shots"] = overrides["shots"][0]
    return overrides


def _map_datasets(entry: Entry, protocol: str, args: dict[str, Any],
                  mapping: dict[str, str] | None) -> tuple[list[str], list[str]]:
    """Replace the call's datasets in `args` by those run; (the paper's datasets, those an Average is over)."""

    def use(names: list[str]) -> list[str]:
        if mapping is None:
            return names
        absent = [d for d in names if d not in mapping]
        if absent:
            raise ClipfitError(f"dataset {absent[0]} has no synthetic stand-in; run {entry.name} on the real data "
                               "(--root) or without --stand-ins")
        return list(dict.fromkeys(mapping[d] for d in names))

    if protocol in ("fewshot", "base2new", "regimes"):
        real = expand_datasets(args.pop("datasets"))
        args["datasets"] = use(real)
        average = real
    elif protocol in ("crossdataset", "domainshift"):
        source = expand_datasets([args.pop("source", "imagenet")])[0]
        targets = expand_datasets(args.pop("targets", DEFAULT_TARGETS[protocol]))
        args["source"] = use([source])[0]
        args["targets"] = [t for t in use(targets) if t != args["source"]]
        real, average = [source, *targets], targets
    else:  # episodic
        real = expand_datasets([args.pop("dataset")])
        args["dataset"] = use(real)[0]
        average = real
    return real, list(entry.average) if entry.average is not None else average


def make_plan(entry: Entry, model: str | None = None, root: str | None = None, seeds: Sequence[int] | None = None,
              methods: Sequence[str] | None = None, stand_ins: bool | None = None,
              overrides: dict[str, Any] | None = None) -> Plan:
    """The protocol call of `entry` for these options: on the real datasets (read from `root`) and the paper's
    backbone, or with `stand_ins=True` on synthetic stand-ins and the embedded model (`--model` changes either)."""
    if entry.needs:
        raise ClipfitError(f"{entry.name} needs {entry.needs}; `clipfit paper list` shows what runs now")
    if entry.call is None:
        raise ClipfitError(f"{entry.name} has no protocol call")
    protocol, args = entry.call.protocol, dict(entry.call.args)
    model, why = choose_model(entry, model, stand_ins)
    chosen = _chosen_methods(entry, methods)
    overrides = _checked_overrides(entry, protocol, overrides)
    mapping = dict(STAND_INS) if stand_ins else None
    adjusted = {k: v for k, v in STAND_IN_ARGS.get(protocol, {}).items()
                if mapping and k not in args and k not in overrides}
    args.update(adjusted)
    args.update(overrides)
    real, average = _map_datasets(entry, protocol, args, mapping)
    return Plan(entry, protocol, model, why, chosen, list(seeds or (1, 2, 3)), args, real, average, mapping, overrides,
                adjusted)


def plan_of(entry: Entry, opts: RunOptions) -> Plan:
    """`make_plan` with the options of `paper run`."""
    return make_plan(entry, opts.model, opts.root, opts.seeds, opts.methods, opts.stand_ins, opts.overrides)


def entry_datasets(entry: Entry) -> list[str]:
    """The real datasets an entry reads (none for parameter counts)."""
    if entry.call is None:
        return []
    args = entry.call.args
    if entry.call.protocol in ("train", "timing"):
        return expand_datasets([args["dataset"]])
    if entry.call.protocol == "datasets":
        return expand_datasets(args["datasets"])
    if entry.call.protocol == "params":
        return []
    return make_plan(replace(entry, figure=None), stand_ins=False).datasets


def call_protocol(plan: Plan, opts: RunOptions, out: Path, settings: dict[str, Any], dry_run: bool = False):
    """Run the plan's protocol call with its runs under `out`: its results.json content; with `dry_run`, its planned
    runs (a `protocols.dryrun.PlannedGrid`)."""
    kwargs = dict(plan.args, out=out / plan.runs_dir_name, methods=plan.methods, seeds=plan.seeds, root=opts.root,
                  device=opts.device, progress=opts.progress and not dry_run, echo=opts.echo, dry_run=dry_run,
                  **settings)
    if plan.protocol != "episodic":
        kwargs["skip_missing"] = opts.skip_missing
    try:
        res = PROTOCOL_FUNCTIONS[plan.protocol](plan.model, **kwargs)
    except MissingDatasets as e:
        if plan.stand_ins:
            raise
        raise ClipfitError(f"{e}; or pass --stand-ins to run {plan.entry.name} on synthetic stand-ins") from None
    return res if dry_run else res.summary


def sweep_values(entry: Entry, model: str) -> tuple[list, list[str]]:
    """The values of the entry's swept setting on `model`, and a note when they are not the paper's: a model with
    fewer blocks than the paper's ViT-B/16 sweeps `last_blocks` over its own (read from its config.json, when the
    model is on this machine)."""
    key, values = entry.sweep
    if key != "last_blocks" or model_missing(model) is not None:
        return list(values), []
    from transformers import CLIPConfig  # transformers takes seconds to import; only this sweep reads a config

    cfg = CLIPConfig.from_pretrained(resolve_model_path(model), local_files_only=True)
    blocks = min(cfg.text_config.num_hidden_layers, cfg.vision_config.num_hidden_layers)
    kept = [v for v in values if v <= blocks] or [blocks]
    if kept == list(values):
        return kept, []
    return kept, [f"{key}: {', '.join(map(str, kept))} of the paper's {', '.join(map(str, values))} (this model has "
                  f"{blocks} blocks)"]


def describe(plan: Plan, settings: dict[str, Any]) -> str:
    """The first note under a table: our model and why, seeds, settings, replaced arguments, stand-ins."""
    paper = PAPERS[plan.entry.paper]
    what = [f"ours: {plan.model} ({plan.model_why})", f"seeds {' '.join(map(str, plan.seeds))}"]
    if settings:
        what.append("settings " + " ".join(f"{k}={v}" for k, v in settings.items()))
    for k, v in plan.overridden.items():
        what.append(f"{k.replace('_', ' ')} {show_arg(v)} (the paper's: {show_arg(_papers_value(plan, k))})")
    text = ", ".join(what)
    if plan.stand_ins:
        groups: dict[str, list[str]] = {}
        for d in plan.datasets:
            groups.setdefault(plan.used(d), []).append(d)
        text += ("; on synthetic stand-ins (" + "; ".join(f"{', '.join(v)} -> {k}" for k, v in groups.items())
                 + ")" + "".join(f", {k.replace('_', ' ')} {show_arg(v)} (the stand-ins' classes have 64 training "
                                 "images)" for k, v in plan.adjusted.items())
                 + f". The paper's numbers are for {paper.backbone} on the real datasets: not comparable.")
    else:
        text += f". The paper's: {paper.backbone} on the real datasets."
    return text


def _papers_value(plan: Plan, key: str) -> Any:
    """What the paper used for a protocol argument the command overrode."""
    if key in plan.entry.call.args:
        return plan.entry.call.args[key]
    papers = {"low_shots": recipes.LAYERNORM_LOW_DATA_SHOTS, "high_shots": recipes.LAYERNORM_HIGH_DATA_SHOTS}
    return papers.get(key, "?")


def average_note(plan: Plan, summary: dict) -> list[str]:
    """A note when an Average of ours is over fewer datasets than the paper's (some missing)."""
    present = [d for d in plan.average if plan.used(d) not in summary.get("missing", {})]
    if len(present) == len(plan.average):
        return []
    return [f"Average (ours): over {len(present)} of {len(plan.average)} datasets; missing: "
            + ", ".join(d for d in plan.average if d not in present)]

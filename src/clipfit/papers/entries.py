"""Every table and figure of the three papers that `clipfit paper` can produce, as data.

An entry is a protocol call (`Call`: which protocol command, on which datasets and shots), the paper's numbers (a
file in `numbers/`, whose row and column labels are the paper's), and how those labels map onto our runs: each
printed label resolves to *dimensions* of a cell (dataset, method, metric, shots, regime, ...) through the entry's
own `labels`, else through the paper-wide tables below by the role of its column (`rows`, `columns`). The methods a
table runs are the ones its labels name. A figure without a numbers file names its methods and a `figure` kind
(`clipfit.papers.protocol_figures.FIGURES`); an entry that needs a measurement no protocol makes names it in
`needs`, and `clipfit paper run` refuses it with that line until something produces it.

Stand-ins (`--stand-ins`, on the embedded model by default): the real datasets are replaced by synthetic ones
(`STAND_INS`), chosen by what they stand for: ImageNet (a source of transfer) by `synth_imagenet` (`synth` under
ImageNet's recipe rules), the shifted and fine-grained datasets by `synth_shift`,
ImageNet's test-only variants by the test-only `synth_cast` / `synth_noise16` (the latter keeps 16 of 32 classes, as
ImageNet-A/-R keep 200 of 1000), the high-similarity datasets of the LayerNorm paper by `synth`, its episodic sets
by `synth_episodic`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ClipfitError
from ..recipes import CLIPFIT_PAPER, LAYERNORM_PAPER, LLU_PAPER

AVERAGE = "@average"  # the dataset of an Average row or column


@dataclass(frozen=True)
class Paper:
    key: str
    short: str
    citation: str
    backbone: str = "ViT-B/16 (OpenAI CLIP)"
    model: str = "openai/clip-vit-base-patch16"  # that backbone on the Hugging Face hub: `paper run`'s default model


PAPERS = {p.key: p for p in (
    Paper("clipfit", "CLIPFit", CLIPFIT_PAPER),
    Paper("layernorm", "LayerNorm tuning", LAYERNORM_PAPER),
    Paper("llu", "LLU", LLU_PAPER),
)}


@dataclass(frozen=True)
class Call:
    """A protocol command and its arguments (those of the API function `clipfit.<protocol>`)."""

    protocol: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    name: str  # "clipfit:table1"
    paper: str  # a key of PAPERS
    label: str  # "Table 1", as the paper names it
    title: str  # what it shows, in a few words
    call: Call | None = None
    numbers: str | None = None  # file in numbers/
    rows: tuple[str, ...] = ()  # the role of each label column of the numbers file
    columns: str = "method"  # the role of its value columns
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)  # printed label -> dimensions (this entry's)
    paper_only: tuple[str, ...] = ()  # printed labels with no run of ours (leaderboards)
    fixed: dict[str, Any] = field(default_factory=dict)  # dimensions every cell shares
    average: tuple[str, ...] | None = None  # datasets of an Average (default: the call's datasets, or its targets)
    hm_average: str = "hm_of_means"  # an Average row's HM: "hm_of_means" (CoOp's) or "mean_of_hms" (LLU's)
    methods: tuple[str, ...] = ()  # figures drawn from a protocol: the methods drawn
    figure: str | None = None  # a key of protocol_figures.FIGURES (how the protocol's results are drawn) or of
    # ANALYSIS_KINDS
    sweep: tuple[str, tuple] | None = None  # figure "sweep": (setting, its values), the call once per value
    time_batch: int = 0  # > 0: the "time" cells are each method's training time per image at this batch size,
    # measured side by side after the runs (clipfit.analyses.timing.measure_steps)
    needs: str | None = None  # what must exist before it can be produced
    notes: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "table" if self.label.startswith("Table") else "figure"

    @property
    def caption(self) -> str:
        """The heading of its printout: "CLIPFit Table 1: base-to-new generalisation, ..."."""
        return f"{PAPERS[self.paper].short} {self.label}: {self.title}"


# -- the papers' names, by role --------------------------------------------------------------------------------------

DATASET_LABELS = {
    "Average": AVERAGE, "AVG": AVERAGE, "Average over 11 datasets": AVERAGE,
    "ImageNet": "imagenet", "Caltech101": "caltech101", "OxfordPets": "oxford_pets",
    "Stanford Cars": "stanford_cars", "StanfordCars": "stanford_cars", "S.C.": "stanford_cars",
    "Flowers102": "oxford_flowers", "Flowers": "oxford_flowers", "Food101": "food101",
    "FGVC Aircraft": "fgvc_aircraft", "FGVCAircraft": "fgvc_aircraft", "FGCVAircraft": "fgvc_aircraft",
    "F.A.": "fgvc_aircraft", "SUN397": "sun397", "Sun397": "sun397", "DTD": "dtd", "EuroSAT": "eurosat",
    "UCF101": "ucf101", "-V2": "imagenetv2", "ImageNetV2": "imagenetv2", "-Sketch": "imagenet_sketch",
    "ImageNet-Sketch": "imagenet_sketch", "ImageNet-A": "imagenet_a", "ImageNet-R": "imagenet_r",
    "FMoW": "fmow", "Camelyon17": "camelyon17", "iWildCam": "iwildcam",
}
METHOD_LABELS = {
    "CLIP": "zeroshot", "Zero-shot": "zeroshot", "CoOp": "coop", "CoOP": "coop", "CoCoOp": "cocoop",
    "Adapter": "clip_adapter", "CLIP-adapter": "clip_adapter", "CLIP Adapter": "clip_adapter",
    "CLIP Ada.": "clip_adapter", "KgCoOp": "kgcoop", "MaPLe": "maple", "ProGrad": "prograd",
    "Tip-adapter": "tip_adapter", "TIP-adapter": "tip_adapter", "CLIPFit": "clipfit", "LLU": "llu",
}
METRIC_LABELS = {"Base": "base", "New": "new", "HM": "hm", "H": "hm", "Mean": "hm", "Params": "params",
                 "# param.": "params", "time": "time", "Regularization": "reg"}
ROLES = {"dataset": DATASET_LABELS, "method": METHOD_LABELS, "metric": METRIC_LABELS}

STAND_INS = {
    "imagenet": "synth_imagenet",
    **{d: "synth_shift" for d in ("caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
                                  "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101")},
    "imagenetv2": "synth_cast", "imagenet_sketch": "synth_shift", "imagenet_a": "synth_noise16",
    "imagenet_r": "synth_noise16",
    **{d: "synth" for d in ("cifar10", "cifar100", "camelyon17")},
    **{d: "synth_shift" for d in ("mnist", "fmow", "iwildcam", "eurosat_ln", "oxford_flowers_ln", "dtd_ln",
                                  "food101_ln")},
    "mini_imagenet": "synth_episodic", "cub": "synth_episodic",
}
# Protocol arguments the stand-ins need: their classes have 64 training images, so the high-data regime is 32 shots.
STAND_IN_ARGS = {"regimes": {"high_shots": (32,)}}

COOP11 = "coop11"
# figures that are analyses (clipfit.papers.analysis_figures): trained variants with recording, t-SNE, a setting swept
# through the entry's protocol call, step time against batch size. Their Call is "train" (dataset, shots, variants
# and what to draw) or "timing" (dataset, batch sizes); a sweep's is its protocol's.
ANALYSIS_KINDS = ("layers", "tsne", "sweep", "timing")
RECORD = "change,grads,steps"  # what the variants of a "layers" or "tsne" figure record as they train
_REG = {"CLIPFit": {}, "CLIPFit w/o regulariser": {"reg": "none"}}
_ONLY = {"CLIPFit": {}}


def _layers(dataset: str, variants: dict, draw: tuple[str, ...] = ("change",), series: str | None = None,
            **more: Any) -> Call:
    return Call("train", {"dataset": dataset, "shots": 16, "variants": variants, "draw": draw, "series": series,
                          **more})
FEWSHOT_SHOTS = (1, 2, 4, 8, 16)

# -- entries ---------------------------------------------------------------------------------------------------------

_B2N16 = Call("base2new", {"datasets": COOP11, "shots": 16})
_CLIPFIT = [
    Entry("clipfit:table1", "clipfit", "Table 1", "base-to-new generalisation, 16 shots, 11 datasets",
          _B2N16, "clipfit_table1.csv", rows=("dataset", "metric")),
    Entry("clipfit:table2", "clipfit", "Table 2", "few-shot accuracy by shots, average over 11 datasets",
          Call("fewshot", {"datasets": COOP11, "shots": FEWSHOT_SHOTS}), "clipfit_table2.csv",
          rows=("method",), columns="shots", fixed={"dataset": AVERAGE}),
    Entry("clipfit:table3", "clipfit", "Table 3", "distribution shift: 16 shots of ImageNet, tested on -V2 and -Sketch",
          Call("domainshift", {"source": "imagenet", "targets": ("imagenetv2", "imagenet_sketch"), "shots": 16}),
          "clipfit_table3.csv", rows=("method",), columns="dataset",
          average=("imagenet", "imagenetv2", "imagenet_sketch")),
    Entry("clipfit:table4", "clipfit", "Table 4", "prompt and adapter tuning with and without the image LayerNorms "
          "(+UL), 16-shot base-to-new, average over 11 datasets",
          _B2N16, "clipfit_table4.csv", rows=("method",), columns="metric", fixed={"dataset": AVERAGE},
          labels={"CoOp +UL": {"method": "coop+ln"}, "KgCoOp +UL": {"method": "kgcoop+ln"},
                  "CLIP-adapter +UL": {"method": "clip_adapter+ln"}}),
    Entry("clipfit:table5", "clipfit", "Table 5", "bias-tuning strategies (cross-entropy only), 16-shot base-to-new, "
          "average over 11 datasets",
          _B2N16, "clipfit_table5.csv", rows=("method",), columns="metric", fixed={"dataset": AVERAGE},
          labels={"(a) Text+Image bias": {"method": "clipfit:text_image_bias"},
                  "(b) Text bias": {"method": "clipfit:text_bias"},
                  "(c) FFNs bias (Text)": {"method": "clipfit:ffn_bias"},
                  "(d) Projection bias (Text)": {"method": "clipfit:proj_bias"}},
          notes=("# param.: trainable parameters of our runs (mean over datasets) on the model used",)),
    Entry("clipfit:table6", "clipfit", "Table 6", "ablation of CLIPFit's components, few-shot 1/4/16 shots, average over "
          "11 datasets",
          Call("fewshot", {"datasets": COOP11, "shots": (1, 4, 16)}), "clipfit_table6.csv",
          rows=("method",), columns="shots", fixed={"dataset": AVERAGE},
          labels={"Porjection Bias": {"method": "clipfit:proj_bias"}, "w/ LayerNorm": {"method": "clipfit:no_kd"},
                  "w/ KD loss": {"method": "clipfit:no_ln"}, "w/ KD loss + LayerNorm": {"method": "clipfit"},
                  "1-shot": {"shots": 1}, "4-shot": {"shots": 4}, "16-shot": {"shots": 16}}),
    Entry("clipfit:table7", "clipfit", "Table 7", "training efficiency: parameters, time per image, 16-shot "
          "base-to-new averages",
          _B2N16, "clipfit_table7.csv", rows=("method",), columns="metric", fixed={"dataset": AVERAGE},
          time_batch=32,
          notes=("Params: trainable parameters of our runs (mean over datasets) on the model used",
                 "time: ms of training (forward, backward, update) per image, the median of 3 steps of batch 32 on the "
                 "first dataset, every method measured in one process on the same images after the runs")),
    Entry("clipfit:table8", "clipfit", "Table 8", "each dataset's classes, split sizes and hand-crafted prompt",
          Call("datasets", {"datasets": (COOP11, "imagenetv2", "imagenet_sketch")}), "clipfit_table8.csv",
          rows=("dataset",), columns="stat",
          labels={"Classes": {"stat": "classes", "metric": "count"}, "Train": {"stat": "train", "metric": "count"},
                  "Val": {"stat": "val", "metric": "count"}, "Test": {"stat": "test", "metric": "count"},
                  "Hand-crafted prompt": {"stat": "template", "metric": "text"}}),
    Entry("clipfit:table9", "clipfit", "Table 9", "cross-dataset transfer: 16 shots of ImageNet, tested on 10 datasets",
          Call("crossdataset", {"source": "imagenet", "targets": "coop10", "shots": 16}), "clipfit_table9.csv",
          rows=("method",), columns="dataset"),
    Entry("clipfit:table10", "clipfit", "Table 10", "few-shot accuracy on each of 11 datasets, 1-16 shots",
          Call("fewshot", {"datasets": COOP11, "shots": FEWSHOT_SHOTS}), "clipfit_table10.csv",
          rows=("shots", "method"), columns="dataset"),
    Entry("clipfit:table11", "clipfit", "Table 11", "base-to-new generalisation, 4 shots, 11 datasets",
          Call("base2new", {"datasets": COOP11, "shots": 4}), "clipfit_table11.csv", rows=("dataset", "metric")),
    Entry("clipfit:table12", "clipfit", "Table 12", "base-to-new generalisation, 8 shots, 11 datasets",
          Call("base2new", {"datasets": COOP11, "shots": 8}), "clipfit_table12.csv", rows=("dataset", "metric")),
    Entry("clipfit:figure3", "clipfit", "Figure 3", "change of each tuned layer's parameters after CLIPFit on DTD "
          "(text FFN biases, image LayerNorm gains and biases)", _layers("dtd", _ONLY), methods=("clipfit",),
          figure="layers", notes=("16 shots, seed 1, the few-shot recipe; change = ||p - p0||^2 per layer",)),
    Entry("clipfit:figure4", "clipfit", "Figure 4", "squared gradient sum per text bias layer; parameter change with "
          "and without the regularisers", _layers("dtd", _REG, ("grads", "change"), "text"), methods=("clipfit",),
          figure="layers", notes=("the figure: squared gradient sums; change.png beside it: the change with and "
                                  "without the regulariser",)),
    Entry("clipfit:figure5", "clipfit", "Figure 5", "t-SNE of EuroSAT image features, zero-shot CLIP and CLIPFit",
          _layers("eurosat", _ONLY, points=400), methods=("clipfit",), figure="tsne",
          notes=("silhouette (cosine, by class) of each embedding's features in the table",)),
    Entry("clipfit:figure6", "clipfit", "Figure 6", "HM of 16-shot base-to-new against the KD weight beta",
          _B2N16, methods=("clipfit",), figure="sweep", sweep=("beta", (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)),
          notes=("beta values: ours (the paper's axis is not in its text); HM of the average base and new",)),
    Entry("clipfit:figure7", "clipfit", "Figure 7", "change of each tuned layer's parameters on EuroSAT",
          _layers("eurosat", _ONLY), methods=("clipfit",), figure="layers"),
    Entry("clipfit:figure8", "clipfit", "Figure 8", "image LayerNorm change with and without the regularisers, DTD",
          _layers("dtd", _REG, series="image"), methods=("clipfit",), figure="layers"),
    Entry("clipfit:figure9", "clipfit", "Figure 9", "text bias change with and without the regularisers, EuroSAT",
          _layers("eurosat", _REG, series="text"), methods=("clipfit",), figure="layers"),
    Entry("clipfit:figure10", "clipfit", "Figure 10", "image LayerNorm change with and without the regularisers, "
          "EuroSAT", _layers("eurosat", _REG, series="image"), methods=("clipfit",), figure="layers"),
    Entry("clipfit:figure11", "clipfit", "Figure 11", "squared gradient sum per image LayerNorm; change of the first "
          "layers at each iteration", _layers("dtd", _ONLY, ("grads", "steps"), "image", layers="1"),
          methods=("clipfit",), figure="layers",
          notes=("steps.png beside it: the change of layer 1 of every series at each iteration",)),
]

_LN_COUNTS = {"Linear Probe": "linear_probe", "Prompt Tuning": "prompt", "Compacter": "compacter",
              "Layer Norm": "layernorm", "Adapter": "adapter", "Full Fine-tuning": "full"}
_LN_FAMILIES = {"Linear Probe": "linear_probe", "Prompt Tuning": "prompt", "Adapter": "adapter",
                "Compacter": "compacter"}
_LN_COMBOS = {"None": "", "Normal": "+ln", "As Initialization": "@layernorm"}
_LN_REGIMES = {"Low-Data Regime": "low", "High-Data Regime": "high"}
_LN_METHODS = ("zeroshot", "linear_probe", "prompt", "layernorm", "adapter", "compacter", "full")  # its Figure 3
_LN_EPISODIC = Call("episodic", {"ways": 5, "shots": (1, 5), "queries": 15, "episodes": 600, "base_shots": 0})
_LAYERNORM = [
    Entry("layernorm:table1", "layernorm", "Table 1", "LayerNorm tuning combined with each method (none / together / "
          "as initialisation), low- and high-data regimes, average over datasets",
          Call("regimes", {"datasets": "layernorm10"}), "layernorm_table1.csv", rows=("method",), columns="combination",
          labels={**{k: {"method": v} for k, v in _LN_FAMILIES.items()},
                  **{f"{r} / {c}": {"regime": rv, "suffix": cv} for r, rv in _LN_REGIMES.items()
                     for c, cv in _LN_COMBOS.items()}}),
    Entry("layernorm:figure2", "layernorm", "Figure 2", "trainable parameters of each fine-tuning method, ViT-B/16",
          Call("params", {"arch": "ViT-B/16"}), "layernorm_figure2.csv", rows=("count",),
          labels={"Parameters": {"metric": "count"}, **{k: {"method": v} for k, v in _LN_COUNTS.items()}}),
    Entry("layernorm:table2", "layernorm", "Table 2", "WILDS: FMoW, Camelyon17, iWildCam (macro F1)",
          Call("regimes", {"datasets": ("fmow", "camelyon17", "iwildcam"), "regimes": ("high",)}),
          "layernorm_table2.csv", rows=("method",), columns="dataset", fixed={"regime": "high"},
          labels={"LayerNorm Tuning": {"method": "layernorm"},
                  "Linear Probe + LN as Initialization": {"method": "linear_probe@layernorm"}},
          paper_only=("Best leaderboard result",),
          notes=("ours: the high-data regime (mean over its shot counts); the paper does not say how much data "
                 "these runs used",)),
    Entry("layernorm:table3", "layernorm", "Table 3", "episodic 5-way few-shot on Mini-ImageNet",
          Call("episodic", {"dataset": "mini_imagenet", **_LN_EPISODIC.args}), "layernorm_table3.csv",
          rows=("method",), columns="shots",
          labels={"LayerNorm": {"method": "layernorm"}, "Prompt Tuning + LN": {"method": "prompt+ln"},
                  "Adapter + LN": {"method": "adapter+ln"}, "Linear Probe + LN": {"method": "linear_probe+ln"},
                  "Mini-ImageNet (1-shot)": {"shots": 1}, "Mini-ImageNet (5-shot)": {"shots": 5}},
          paper_only=("Best leaderboard result",)),
    Entry("layernorm:table4", "layernorm", "Table 4", "episodic 5-way few-shot on CUB",
          Call("episodic", {"dataset": "cub", **_LN_EPISODIC.args}), "layernorm_table4.csv",
          rows=("method",), columns="shots",
          labels={"LayerNorm": {"method": "layernorm"},
                  "Adapter + LN as Initialization": {"method": "adapter@layernorm"},
                  "Prompt Tuning + LN as Initialization": {"method": "prompt@layernorm"},
                  "Linear Probe + LN as Initialization": {"method": "linear_probe@layernorm"},
                  "CUB (1-shot)": {"shots": 1}, "CUB (5-shot)": {"shots": 5}},
          paper_only=("Best leaderboard result",)),
    Entry("layernorm:figure3", "layernorm", "Figure 3", "methods across the four regimes (data x similarity), bars",
          Call("regimes", {"datasets": "layernorm10"}), methods=_LN_METHODS, figure="quadrants"),
    Entry("layernorm:figure4", "layernorm", "Figure 4", "methods on each dataset, low- and high-data regimes, bars",
          Call("regimes", {"datasets": "layernorm10"}), methods=_LN_METHODS, figure="regime_datasets"),
    Entry("layernorm:figure5", "layernorm", "Figure 5", "methods initialised from LayerNorm tuning across the four "
          "regimes, bars",
          Call("regimes", {"datasets": "layernorm10"}),
          methods=("layernorm", "linear_probe@layernorm", "prompt@layernorm", "adapter@layernorm",
                   "compacter@layernorm"), figure="quadrants"),
    Entry("layernorm:figure6", "layernorm", "Figure 6", "accuracy against shots on each dataset, lines",
          Call("regimes", {"datasets": "layernorm10"}), methods=_LN_METHODS, figure="dataset_shots"),
    Entry("layernorm:figure7", "layernorm", "Figure 7", "LayerNorm tuning of the last K blocks only, K = 2 ... 12",
          Call("regimes", {"datasets": "layernorm10", "regimes": ("low",), "low_shots": (1, 4, 16)}),
          methods=("layernorm",), figure="sweep", sweep=("last_blocks", (2, 4, 6, 8, 10, 12)),
          notes=("the paper's own protocol (its regimes, low data): validation of K images per class (Flowers "
                 "min(K, 4)), the best epoch kept","the paper's Sec. 4.3 cites 'Figure 7' for the recipes that its Figure 5 shows; this entry is the "
                 "appendix figure captioned 'Effect of tuning a subset of trainable LayerNorm parameters'",
                 "shots 1, 4, 16: ours (the figure's are not in the text); the average over the datasets")),
]

_LLU_METHODS = ("zeroshot", "coop", "cocoop", "prograd", "clip_adapter", "llu")
_LLU = [
    Entry("llu:table1", "llu", "Table 1", "base-to-new generalisation, 16 shots, 11 datasets",
          _B2N16, "llu_table1.csv", rows=("dataset", "method"), columns="metric", hm_average="mean_of_hms",
          notes=("Average H: the mean of the datasets' H, as the LLU paper computes its own rows (its CLIP, CoOp and "
                 "CoCoOp rows, taken from CoCoOp's paper, are the HM of the average Base and New)",)),
    Entry("llu:table2", "llu", "Table 2", "cross-dataset transfer: 16 shots of ImageNet, tested on 10 datasets",
          Call("crossdataset", {"source": "imagenet", "targets": "coop10", "shots": 16}), "llu_table2.csv",
          rows=("method",), columns="dataset"),
    Entry("llu:table3", "llu", "Table 3", "domain generalisation: 16 shots of ImageNet, tested on -V2, -Sketch, -A, -R",
          Call("domainshift", {"source": "imagenet", "shots": 16}), "llu_table3.csv", rows=("method",),
          columns="dataset"),
    Entry("llu:table4", "llu", "Table 4", "ablation of LLU's design choices, 16-shot base-to-new, average over 11 "
          "datasets",
          _B2N16, "llu_table4.csv", rows=("metric",), columns="method", fixed={"dataset": AVERAGE},
          hm_average="mean_of_hms",
          labels={"Default": {"method": "llu"}, "no cluster": {"method": "llu:no_cluster"},
                  "no damp.": {"method": "llu:no_damp"}, "no mask": {"method": "llu:no_mask"},
                  "Dirac mask": {"method": "llu:dirac"}, "no reg": {"method": "llu:no_reg"},
                  "rand. init": {"method": "llu:rand_init"}, "Linear": {"method": "llu:linear"}},
          notes=("Mean: the mean of the datasets' HM, as the LLU paper computes it",
                 "Regularization: our runs' identity regulariser (reg=mse) averaged over the last epoch's steps")),
    Entry("llu:figure2", "llu", "Figure 2", "base and new accuracy against shots, each dataset and the average, lines",
          Call("base2new", {"datasets": COOP11, "shots": FEWSHOT_SHOTS}), methods=_LLU_METHODS, figure="b2n_shots"),
    Entry("llu:figure3", "llu", "Figure 3", "time of one training step against the batch size",
          Call("timing", {"dataset": "imagenet", "batch_sizes": (1, 2, 4, 8, 16, 32)}),
          methods=("llu", "coop", "prograd", "clip_adapter", "cocoop"), figure="timing",
          notes=("median of 3 steps after a warm-up step (forward, backward, update), every method in one process on "
                 "the same images; methods trained on cached features step on features, as the training loop does",)),
]

ENTRIES: dict[str, Entry] = {e.name: e for e in _CLIPFIT + _LAYERNORM + _LLU}


def get_entry(name: str) -> Entry:
    """The entry called `name`, or a one-line error naming a few that exist."""
    if name in ENTRIES:
        return ENTRIES[name]
    near = [n for n in ENTRIES if n.split(":")[0] == name.split(":")[0]] or list(ENTRIES)
    raise ClipfitError(f"no table or figure {name!r}; `clipfit paper list` names them (e.g. {', '.join(near[:4])})")


def show_arg(v: Any) -> str:
    """A protocol argument as `paper list` and the notes print it: a list as comma-separated values."""
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

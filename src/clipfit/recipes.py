"""Every paper's training recipe, as a named value with its source, and every method's protocol rules.

A `Recipe` is a set of settings (training fields of `TrainConfig`, and method fields) that a paper ran, with the
paper named. Its `rules(ctx)` add what depends on the protocol, the canonical dataset name (aliases already
resolved) and the shot count. A method names its recipe when it is registered; a run's settings are, in
increasing precedence: the config defaults, the recipe's settings, the recipe's rules, a preset's settings
(`prompt+ln`, ...), and the user's settings (`--set`, or keyword arguments of `clipfit.train`).

Each number here is written once: a recipe that reuses another's numbers derives from it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

# The papers, as the code and the docs cite them.
CLIPFIT_PAPER = ("CLIPFit: M. Li, J. Zhong, C. Li, L. Li, N. Lin, M. Sugiyama, \"Vision-Language Model Fine-Tuning via "
                 "Simple Parameter-Efficient Modification\", EMNLP 2024 (arXiv:2409.16718)")
LAYERNORM_PAPER = ("K. Kim, M. Laskin, I. Mordatch, D. Pathak, \"How to Adapt Your Large-Scale Vision-and-Language "
                   "Model\", OpenReview (ICLR 2022 submission)")
LLU_PAPER = ("M. Ibing, I. Lim, L. Kobbelt, \"Localized Latent Updates for Fine-Tuning Vision-Language Models\", "
             "arXiv:2212.06556")
COOP_PAPER = "CoOp: K. Zhou, J. Yang, C. C. Loy, Z. Liu, \"Learning to Prompt for Vision-Language Models\", IJCV 2022"

# CoOp's protocols (CLIPFit and LLU follow them), then the LayerNorm-tuning paper's: its low/high-data regimes and
# its episodic few-shot protocol.
COOP_PROTOCOLS = ("fewshot", "base2new", "crossdataset", "domainshift")
LAYERNORM_PROTOCOLS = ("regimes", "episodic")
PROTOCOLS = COOP_PROTOCOLS + LAYERNORM_PROTOCOLS


@dataclass(frozen=True)
class Context:
    """What a recipe's rules may depend on."""

    protocol: str  # one of PROTOCOLS
    dataset: str  # canonical catalogue name (aliases resolved), or the spec of a user dataset ('imagefolder:...')
    shots: int  # training images per class (0: all)


Rules = Callable[[Context], dict[str, Any]]


@dataclass(frozen=True)
class Recipe:
    """A paper's training recipe: settings by field name, their source, and rules by protocol, dataset and shots."""

    name: str
    source: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    rules: Rules | None = None

    def __post_init__(self):
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    def derive(self, name: str, source: str, rules: Rules | None = None, **changes: Any) -> Recipe:
        """Another paper's recipe that reuses this one's numbers, changing `changes` (and the rules, if given)."""
        return replace(self, name=name, source=source, settings={**self.settings, **changes},
                       rules=rules if rules is not None else self.rules)

    def resolve(self, ctx: Context) -> dict[str, Any]:
        """The settings this recipe gives for one run: its own, then its rules' for `ctx`."""
        return {**self.settings, **(self.rules(ctx) if self.rules else {})}


# -- Dassl / CoOp ----------------------------------------------------------------------------------------------------

DASSL_SGD = Recipe(
    "dassl_sgd",
    f"{COOP_PAPER}; the Dassl.pytorch defaults its configs use: SGD, momentum 0.9, weight decay 5e-4, batch 32, "
    "cosine per epoch after one warm-up epoch at constant 1e-5; a fixed schedule whose last epoch is tested "
    "(Dassl's TEST.FINAL_MODEL 'last_step': no checkpoint selection)",
    dict(optimizer="sgd", lr=0.002, momentum=0.9, weight_decay=5e-4, batch_size=32, warmup_epochs=1,
         warmup_lr=1e-5, scheduler="cosine", select="last"),
)

COOP_VAL_SHOTS = 4  # CoOp's validation set: min(K, 4) images per class

# CoOp's few-shot schedule: epochs by shots (its configs vit_b16_ep50 / ep100 / vit_b16); ImageNet 50 for all shots.
COOP_EPOCHS_BY_SHOTS = {1: 50, 2: 100, 4: 100, 8: 200, 16: 200}
COOP_IMAGENET_EPOCHS = 50


def coop_epochs(ctx: Context) -> int:
    """CoOp's epochs for a shot count (the next listed count up; more than 16 shots: 200), ImageNet 50."""
    if ctx.dataset == "imagenet":
        return COOP_IMAGENET_EPOCHS
    shots = ctx.shots if ctx.shots > 0 else max(COOP_EPOCHS_BY_SHOTS)
    for k in sorted(COOP_EPOCHS_BY_SHOTS):
        if shots <= k:
            return COOP_EPOCHS_BY_SHOTS[k]
    return COOP_EPOCHS_BY_SHOTS[max(COOP_EPOCHS_BY_SHOTS)]


# -- CLIPFit ---------------------------------------------------------------------------------------------------------

CLIPFIT_SHORT_DATASETS = ("imagenet", "food101")  # 10 epochs instead of 100 (CLIPFit, appendix)
CLIPFIT_SHORT_EPOCHS = 10
CLIPFIT_BETA = {"base2new": 8.0, "crossdataset": 8.0, "fewshot": 2.0, "domainshift": 2.0}
CLIPFIT_FEWSHOT_BETA8 = ("dtd", "sun397")  # few-shot: beta 8 for DTD and SUN397, 2 for the others


def clipfit_schedule(ctx: Context) -> dict[str, Any]:
    """CLIPFit's epochs: 10 for ImageNet and Food101, the recipe's 100 otherwise."""
    return {"epochs": CLIPFIT_SHORT_EPOCHS} if ctx.dataset in CLIPFIT_SHORT_DATASETS else {}


def clipfit_rules(ctx: Context) -> dict[str, Any]:
    """CLIPFit's epochs, and its KD weight beta by protocol (8 for DTD and SUN397 in few-shot)."""
    beta = CLIPFIT_BETA.get(ctx.protocol, CLIPFIT_BETA["fewshot"])
    if ctx.protocol == "fewshot" and ctx.dataset in CLIPFIT_FEWSHOT_BETA8:
        beta = CLIPFIT_BETA["base2new"]
    return {**clipfit_schedule(ctx), "beta": beta}


CLIPFIT = DASSL_SGD.derive(
    "clipfit", f"{CLIPFIT_PAPER}, Sec. 4 and appendix B: CoOp's optimiser, augmentation and protocol (the last epoch "
    "is tested), 100 epochs (10 for ImageNet and Food101). The appendix's \"smoothing parameter alpha = 0.99\" is "
    "defined nowhere and unused by the reference trainer: not applied", rules=clipfit_rules, epochs=100)

# BitFit on CLIP as CLIPFit's Table 5 runs it: CLIPFit's optimiser and epochs, cross-entropy only.
BITFIT = CLIPFIT.derive("bitfit", f"{CLIPFIT_PAPER}, Table 5: CLIPFit's recipe without the KD term",
                        rules=clipfit_schedule)

# -- "How to Adapt Your Large-Scale Vision-and-Language Model" -----------------------------------------------------

# Its regimes: low data 1-16 shots, high data 256 and 512 (CIFAR-100: 256 and 450); datasets split into low and
# high similarity to the pretraining data by zero-shot accuracy at 55% (Sec. 4).
LAYERNORM_LOW_DATA_SHOTS = (1, 2, 4, 8, 16)
LAYERNORM_HIGH_DATA_SHOTS = (256, 512)
LAYERNORM_HIGH_DATA_SHOTS_BY_DATASET = {"cifar100": (256, 450)}  # "due to data constraints"
LAYERNORM_SIMILARITY_THRESHOLD = 55.0
LAYERNORM_HIGH_DATA_EPOCHS = 50
LAYERNORM_HIGH_DATA_VAL_DIVISOR = 10  # high data: a validation set of K/10 images per class
LAYERNORM_VAL_CAPPED = ("oxford_flowers",)  # low data: K validation images per class, Flowers min(K, 4)


def layernorm_high_data(shots: int) -> bool:
    """True for the LayerNorm-tuning paper's high-data regime: more than 16 shots, or every image (shots <= 0)."""
    return shots <= 0 or shots > max(LAYERNORM_LOW_DATA_SHOTS)


def layernorm_rules(ctx: Context) -> dict[str, Any]:
    """High-data regime (more than 16 shots): 50 epochs instead of 100; the episodic protocol's base-class stage
    trains 100 epochs on every base image."""
    if ctx.protocol != "episodic" and layernorm_high_data(ctx.shots):
        return {"epochs": LAYERNORM_HIGH_DATA_EPOCHS}
    return {}


def validation_shots(ctx: Context) -> int:
    """Validation images per class drawn for a run with K = ctx.shots training images per class: CoOp's min(K, 4);
    under the LayerNorm-tuning paper's protocols K (Flowers min(K, 4)) in its low-data regime, K/10 in its
    high-data regime (appendix A.3)."""
    k = ctx.shots
    if ctx.protocol in LAYERNORM_PROTOCOLS:
        if layernorm_high_data(k):
            return max(1, k // LAYERNORM_HIGH_DATA_VAL_DIVISOR)
        return min(k, COOP_VAL_SHOTS) if ctx.dataset in LAYERNORM_VAL_CAPPED else k
    return min(k, COOP_VAL_SHOTS)


LAYERNORM_TUNING = Recipe(
    "layernorm_tuning",
    f"{LAYERNORM_PAPER}, appendix A.3: one recipe for every fine-tuning method: AdamW lr 5e-4, weight decay 0.02, "
    "cosine annealing, best epoch on validation, 100 epochs in the low-data regime (50 in the high-data one), "
    "random crops (no flip is named: none). No batch size or warm-up is given: batch 32, no warm-up",
    dict(optimizer="adamw", lr=5e-4, weight_decay=0.02, scheduler="cosine", warmup_epochs=0, epochs=100,
         batch_size=32, select="best", flip=False),
    rules=layernorm_rules,
)

# Its linear probe trains like its other methods, on augmented views: with the backbone frozen, on a cached pool of
# this many random-crop views per image, one drawn per image and epoch.
LINEAR_PROBE_VIEWS = 10
LINEAR_PROBE = LAYERNORM_TUNING.derive(
    "linear_probe", f"{LAYERNORM_PAPER}, appendix A.3 (the recipe of its other methods); augmented views from a cached "
    f"pool of {LINEAR_PROBE_VIEWS} per image when the backbone is frozen", views=LINEAR_PROBE_VIEWS)

# -- Localized Latent Updates ----------------------------------------------------------------------------------------


def llu_rules(ctx: Context) -> dict[str, Any]:
    """LLU uses CoOp's epochs by shots: 1/2/4/8/16 shots -> 50/100/100/200/200 epochs; ImageNet 50."""
    return {"epochs": coop_epochs(ctx)}


LLU = DASSL_SGD.derive("llu", f"{LLU_PAPER}: \"the same learning rate and number of epochs as CoOp\" (CoOp's "
                       "schedule by shots, 200 epochs at 16 shots, ImageNet 50; the last epoch is tested)",
                       rules=llu_rules, epochs=COOP_EPOCHS_BY_SHOTS[16])

# -- methods that do not train ---------------------------------------------------------------------------------------

NO_TRAINING = Recipe("no_training", "nothing is trained by gradient (zero-shot, or a solver fit on features)",
                     dict(epochs=0))


def zeroshot_rules(ctx: Context) -> dict[str, Any]:
    """The LayerNorm-tuning paper's protocols evaluate zero-shot CLIP with CLIP's 80-template ensemble."""
    return {"templates": "imagenet80"} if ctx.protocol in LAYERNORM_PROTOCOLS else {}


ZERO_SHOT = NO_TRAINING.derive("zero_shot", f"nothing trains; one hand-written template per dataset (CLIPFit Table 8), "
                               f"CLIP's 80 templates under the protocols of {LAYERNORM_PAPER} (appendix A.2)",
                               rules=zeroshot_rules)

# -- CoOp's family: CoOp, CoCoOp, KgCoOp, ProGrad -------------------------------------------------------------------

# -- deep prompts: MaPLe, PromptSRC ----------------------------------------------------------------------------------

# -- adapters on features and low-rank updates: CLIP-Adapter, Tip-Adapter(-F), CLIP-LoRA ------------------------------

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
# this many random-crop views per image, epoch e on view e mod N of every image.
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

COCOOP_PAPER = ("CoCoOp: K. Zhou, J. Yang, C. C. Loy, Z. Liu, \"Conditional Prompt Learning for Vision-Language Models\", "
                "CVPR 2022")
KGCOOP_PAPER = ("KgCoOp: H. Yao, R. Zhang, C. Xu, \"Visual-Language Prompt Tuning with Knowledge-guided Context "
                "Optimization\", CVPR 2023")
PROGRAD_PAPER = ("ProGrad: B. Zhu, Y. Niu, Y. Han, Y. Wu, H. Zhang, \"Prompt-aligned Gradient for Prompt Tuning\", "
                 "ICCV 2023")

COOP_N_CTX = 16  # CoOp's few-shot context length (its headline variant: 16 vectors, class name at the end, shared)
# The CoCoOp paper's context ("ctxv1" configs): the words "a photo of a", so 4 vectors. CoOp in base-to-new and
# cross-dataset transfer, CoCoOp, and KgCoOp use it.
COOP_CTX_INIT = "a photo of a"
COOP_CTXV1 = {"n_ctx": len(COOP_CTX_INIT.split()), "ctx_init": COOP_CTX_INIT}
COCOOP_EPOCHS, COCOOP_BATCH = 10, 1  # vit_b16_c4_ep10_batch1_ctxv1, for every protocol
KGCOOP_EPOCHS, KGCOOP_BATCH = 100, 128  # vit_b16_ep100_ctxv1, for every protocol
KGCOOP_WEIGHT = 8.0  # lambda of KgCoOp's code form, lambda * (1 - mean cos) (TRAINER.COOP.W in its scripts)
PROGRAD_LAMBDA, PROGRAD_T = 1.0, 1.0
# ProGrad's README: lambda 0.8 for 8 and 16 shots on Flowers102, DTD and EuroSAT (the paper's few-shot numbers).
PROGRAD_LOW_LAMBDA, PROGRAD_LOW_LAMBDA_SHOTS = 0.8, 8
PROGRAD_LOW_LAMBDA_DATASETS = ("oxford_flowers", "dtd", "eurosat")


def coop_rules(ctx: Context) -> dict[str, Any]:
    """CoOp's epochs by shots (1: 50, 2-4: 100, 8-16: 200; ImageNet 50); few-shot: 16 random context vectors (the
    CoOp paper); base-to-new, cross-dataset and domain shift: 4 vectors from 'a photo of a' (the CoCoOp paper's CoOp)."""
    return {"epochs": coop_epochs(ctx), **({} if ctx.protocol == "fewshot" else COOP_CTXV1)}


def prograd_rules(ctx: Context) -> dict[str, Any]:
    """CoOp's epochs by shots (ProGrad's configs follow CoOp's); lambda 0.8 for few-shot with 8 or more shots on
    Flowers102, DTD and EuroSAT (ProGrad's README), 1 otherwise."""
    low = (ctx.protocol == "fewshot" and ctx.shots >= PROGRAD_LOW_LAMBDA_SHOTS
           and ctx.dataset in PROGRAD_LOW_LAMBDA_DATASETS)
    return {"epochs": coop_epochs(ctx), **({"prograd_lambda": PROGRAD_LOW_LAMBDA} if low else {})}


# The CoOp protocol tests the last epoch (Dassl's TEST.FINAL_MODEL = last_step), so the family keeps it.
COOP = DASSL_SGD.derive(
    "coop", f"{COOP_PAPER}, configs vit_b16_ep50 / _ep100 / vit_b16 (few-shot) and vit_b16_ctxv1 (base-to-new and "
    "cross-dataset, as the CoCoOp paper ran CoOp); the last epoch is tested", rules=coop_rules, select="last")
COCOOP = DASSL_SGD.derive(
    "cocoop", f"{COCOOP_PAPER}, config vit_b16_c4_ep10_batch1_ctxv1 (every protocol); the last epoch is tested",
    epochs=COCOOP_EPOCHS, batch_size=COCOOP_BATCH, select="last")
KGCOOP = DASSL_SGD.derive(
    "kgcoop", f"{KGCOOP_PAPER}, config vit_b16_ep100_ctxv1 and scripts (lambda 8, every protocol); the last epoch "
    "is tested", epochs=KGCOOP_EPOCHS, batch_size=KGCOOP_BATCH, select="last")
PROGRAD = COOP.derive(
    "prograd", f"{PROGRAD_PAPER}, repository BeierZhu/Prompt-align (ProGrad configs: CoOp's optimiser and epochs, "
    "16 context vectors initialised from the template, lambda 1, T 1); the last epoch is tested", rules=prograd_rules)

# -- deep prompts: MaPLe, PromptSRC ----------------------------------------------------------------------------------

MAPLE_PAPER = ("MaPLe: M. U. Khattak, H. Rasheed, M. Maaz, S. Khan, F. S. Khan, \"MaPLe: Multi-modal Prompt Learning\", "
               "CVPR 2023")
PROMPTSRC_PAPER = ("PromptSRC: M. U. Khattak, S. T. Wasim, M. Naseer, S. Khan, M.-H. Yang, F. S. Khan, \"Self-regulating "
                   "Prompts: Foundational Model Adaptation without Forgetting\", ICCV 2023")

# Cross-dataset (ImageNet source) and domain shift train one shallower model (MaPLe's *_cross_datasets config:
# depth 3, lr 0.0026, 2 epochs; PromptSRC's: depth 3 in both towers, GPA mean 6, std 10).
DEEP_PROMPT_TRANSFER = ("crossdataset", "domainshift")
DEEP_PROMPT_TRANSFER_DEPTH = 3  # both papers
MAPLE_TRANSFER = {"depth": DEEP_PROMPT_TRANSFER_DEPTH, "lr": 0.0026, "epochs": 2}
PROMPTSRC_FEWSHOT_EPOCHS = 50  # its few-shot config (vit_b16_c2_ep50_batch4_4+4ctx_few_shot), every shot count
# GPA (mean, std) over epochs, by protocol; few-shot by dataset (its few-shot config: (45, 5) for these five, (30, 30)
# for ImageNet, Caltech101, OxfordPets, Food101, UCF101, SUN397, and here for datasets outside the benchmark).
PROMPTSRC_GPA = {"base2new": (15.0, 1.0), "crossdataset": (6.0, 10.0), "domainshift": (6.0, 10.0),
                 "fewshot": (30.0, 30.0)}
PROMPTSRC_FEWSHOT_SHARP = ("stanford_cars", "oxford_flowers", "fgvc_aircraft", "dtd", "eurosat")
PROMPTSRC_FEWSHOT_SHARP_GPA = (45.0, 5.0)


def maple_rules(ctx: Context) -> dict[str, Any]:
    """MaPLe: depth 3, lr 0.0026, 2 epochs for cross-dataset and domain shift; few-shot (no MaPLe config exists):
    the base-to-new optimiser for PromptSRC's few-shot epochs (50)."""
    if ctx.protocol in DEEP_PROMPT_TRANSFER:
        return dict(MAPLE_TRANSFER)
    if ctx.protocol == "fewshot":
        return {"epochs": PROMPTSRC_FEWSHOT_EPOCHS}
    return {}


def promptsrc_rules(ctx: Context) -> dict[str, Any]:
    """PromptSRC: GPA mean/std by protocol (few-shot: (45, 5) for Cars, Flowers, Aircraft, DTD, EuroSAT, else (30, 30));
    50 epochs few-shot; depth 3 in both towers for cross-dataset and domain shift."""
    mean, std = PROMPTSRC_GPA.get(ctx.protocol, PROMPTSRC_GPA["fewshot"])
    out: dict[str, Any] = {}
    if ctx.protocol == "fewshot":
        out["epochs"] = PROMPTSRC_FEWSHOT_EPOCHS
        if ctx.dataset in PROMPTSRC_FEWSHOT_SHARP:
            mean, std = PROMPTSRC_FEWSHOT_SHARP_GPA
    if ctx.protocol in DEEP_PROMPT_TRANSFER:
        out.update(depth=DEEP_PROMPT_TRANSFER_DEPTH, depth_vision=DEEP_PROMPT_TRANSFER_DEPTH)
    return {**out, "gpa_mean": mean, "gpa_std": std}


# Both train with Dassl's SGD at batch 4 and test the last epoch (no selection). MaPLe: base-to-new config
# vit_b16_c2_ep5_batch4_2ctx (lr 0.0035, 5 epochs; PromptSRC's copy of that file says 2 epochs, MaPLe's own says 5).
MAPLE = DASSL_SGD.derive("maple", f"{MAPLE_PAPER}; its configs vit_b16_c2_ep5_batch4_2ctx (base-to-new) and "
                         "..._cross_datasets", rules=maple_rules, lr=0.0035, batch_size=4, epochs=5, select="last")
# PromptSRC: vit_b16_c2_ep20_batch4_4+4ctx (base-to-new; the cross-dataset config also trains 20 epochs).
PROMPTSRC = MAPLE.derive("promptsrc", f"{PROMPTSRC_PAPER}; its configs vit_b16_c2_ep20_batch4_4+4ctx (base-to-new), "
                         "..._cross_datasets and vit_b16_c2_ep50_batch4_4+4ctx_few_shot", rules=promptsrc_rules,
                         lr=0.0025, epochs=20)

# -- adapters on features and low-rank updates: CLIP-Adapter, Tip-Adapter(-F), CLIP-LoRA ------------------------------

CLIP_ADAPTER_PAPER = ("CLIP-Adapter: P. Gao, S. Geng, R. Zhang, T. Ma, R. Fang, Y. Zhang, H. Li, Y. Qiao, \"CLIP-Adapter: "
                      "Better Vision-Language Models with Feature Adapters\", IJCV 2024 (arXiv:2110.04544)")
TIP_ADAPTER_PAPER = ("Tip-Adapter: R. Zhang, W. Zhang, R. Fang, P. Gao, K. Li, J. Dai, Y. Qiao, H. Li, \"Tip-Adapter: "
                     "Training-free Adaption of CLIP for Few-shot Classification\", ECCV 2022 (arXiv:2111.03930)")
CLIP_LORA_PAPER = ("CLIP-LoRA: M. Zanella, I. Ben Ayed, \"Low-Rank Few-Shot Adaptation of Vision-Language Models\", "
                   "CVPR Workshops 2024 (arXiv:2405.18541)")


def coop_schedule(ctx: Context) -> dict[str, Any]:
    """CoOp's few-shot epochs by shots: 50 / 100 / 100 / 200 / 200 for 1 / 2 / 4 / 8 / 16 shots, ImageNet 50."""
    return {"epochs": coop_epochs(ctx)}


# CLIP-Adapter's code is one Dassl trainer file with no config; CLIPFit ran it with CoOp's optimiser. Our choice:
# that optimiser with CoOp's few-shot epochs (no number of its own).
CLIP_ADAPTER = DASSL_SGD.derive(
    "clip_adapter", f"{CLIP_ADAPTER_PAPER}: its code runs in CoOp's Dassl trainer and gives no settings; {CLIPFIT_PAPER} "
    "compares with it under CoOp's optimiser (SGD lr 0.002, batch 32). Our choice: that optimiser and CoOp's few-shot "
    "epochs by shots; the last epoch is tested, as Dassl (and its code, which keeps no other) does",
    rules=coop_schedule, select="last")

# Tip-Adapter's configs/<dataset>.yaml: (search_scale beta, search_scale alpha, init_beta, init_alpha). Canonical names.
TIP_ADAPTER_CONFIGS: dict[str, tuple[float, float, float, float]] = {
    "imagenet": (7, 3, 1, 1.17), "caltech101": (12, 5, 1, 3), "dtd": (13, 13, 1, 2), "eurosat": (12, 10, 1, 2),
    "fgvc_aircraft": (30, 30, 1, 5), "food101": (10, 10, 1, 1.17), "oxford_flowers": (50, 50, 1, 10),
    "oxford_pets": (7, 3, 1, 1.17), "stanford_cars": (20, 10, 1, 3), "sun397": (12, 10, 1, 1.17),
    "ucf101": (7, 3, 1, 3),
}
# Other datasets: the median of each entry over the eleven configs (which happens to be EuroSAT's).
TIP_ADAPTER_DEFAULT = tuple(sorted(c)[len(c) // 2] for c in zip(*TIP_ADAPTER_CONFIGS.values()))
TIP_ADAPTER_F_EPOCHS = {"eurosat": 100}  # configs/eurosat.yaml; every other config trains 20 epochs


def tip_adapter_rules(ctx: Context) -> dict[str, Any]:
    """Tip-Adapter's per-dataset search ranges and initial alpha, beta (configs/*.yaml); others: the configs' median."""
    beta_max, alpha_max, beta, alpha = TIP_ADAPTER_CONFIGS.get(ctx.dataset, TIP_ADAPTER_DEFAULT)
    return {"beta_max": float(beta_max), "alpha_max": float(alpha_max), "beta": float(beta), "alpha": float(alpha)}


def tip_adapter_f_rules(ctx: Context) -> dict[str, Any]:
    """Tip-Adapter's per-dataset search ranges and initial alpha, beta; 100 epochs for EuroSAT (20 otherwise)."""
    out = tip_adapter_rules(ctx)
    if ctx.dataset in TIP_ADAPTER_F_EPOCHS:
        out["epochs"] = TIP_ADAPTER_F_EPOCHS[ctx.dataset]
    return out


# The cache is built from 10 augmented passes over the training images with crops of 0.5-1 of the area.
TIP_ADAPTER = NO_TRAINING.derive(
    "tip_adapter", f"{TIP_ADAPTER_PAPER}, its code (main.py, configs/*.yaml): cache from 10 augmented views (random "
    "resized crop 0.5-1, flip); alpha and beta searched on the validation split", rules=tip_adapter_rules,
    crop_scale=0.5)
TIP_ADAPTER_F = Recipe(
    "tip_adapter_f", f"{TIP_ADAPTER_PAPER}, its code: AdamW lr 0.001, eps 1e-4 (weight decay: PyTorch's default "
    "0.01), batch 256, cosine per step, 20 epochs (EuroSAT 100); the epoch and then alpha, beta chosen on validation",
    dict(optimizer="adamw", lr=0.001, adam_eps=1e-4, weight_decay=0.01, batch_size=256, epochs=20, warmup_epochs=0,
         scheduler="cosine", schedule_unit="step", min_lr=0.0, crop_scale=TIP_ADAPTER.settings["crop_scale"]),
    rules=tip_adapter_f_rules,
)

CLIP_LORA_ITERATIONS_PER_SHOT = 500


def clip_lora_rules(ctx: Context) -> dict[str, Any]:
    """CLIP-LoRA's step budget: 500 x shots iterations (all images, shots 0: the recipe's epochs)."""
    return {"iterations": CLIP_LORA_ITERATIONS_PER_SHOT * ctx.shots} if ctx.shots > 0 else {}


CLIP_LORA = Recipe(
    "clip_lora", f"{CLIP_LORA_PAPER}, its code (main.py, lora.py): AdamW lr 2e-4, weight decay 0.01, betas (0.9, "
    "0.999), batch 32, cosine per iteration to 1e-6 over 500 x shots iterations, no validation: the last iterate",
    dict(optimizer="adamw", lr=2e-4, weight_decay=0.01, batch_size=32, warmup_epochs=0, scheduler="cosine",
         schedule_unit="step", min_lr=1e-6, select="last"),
    rules=clip_lora_rules,
)

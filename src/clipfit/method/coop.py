"""CoOp's family: learned prompt context for CLIP's text encoder (the prompt learner of `clipfit.method.prompt`).

- `coop` (CoOp, Zhou et al., IJCV 2022): M learned context vectors, the class name at the end (or middle/front),
  one context for all classes or one per class (`csc`); cross-entropy. Few-shot: 16 random vectors; base-to-new
  and cross-dataset: 4 vectors from "a photo of a" (the CoCoOp paper's CoOp), so the untrained model is zero-shot
  CLIP with the template "a photo of a {}.".
- `cocoop` (CoCoOp, Zhou et al., CVPR 2022): CoOp's context shifted per image by a meta-net
  h(f) = W2 ReLU(W1 f + b1) + b2 (D -> D/16 -> text width) of the normalised image feature f; every image gets its
  own C class prompts. The text encoder runs on all B x C prompts of a batch at once (in chunks of `max_prompts`),
  not image by image as the reference does.
- `kgcoop` (KgCoOp, Yao et al., CVPR 2023): CoOp + kg_weight x a distance between the learned class text features
  and the frozen zero-shot features of the dataset's template. KgCoOp's code uses 1 - mean cos (lambda 8), its
  paper mean ||w - w_clip||^2; for unit vectors the second is twice the first, so code lambda 8 = paper lambda 4.
- `prograd` (ProGrad, Zhu et al., ICCV 2023): CoOp whose cross-entropy gradient, per parameter tensor, loses
  lambda times its component along the gradient of a distillation loss to zero-shot CLIP when the two point against
  each other (negative dot product); the context starts as the template's words in the last positions, zeros before.

The recipes (`clipfit.recipes`, "CoOp's family") test the last epoch, as the CoOp protocol does. Weights stay fp32
(on GPU the engine's bf16 autocast computes the forward); the references update fp16 weights directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from .. import recipes
from ..config import opt
from ..errors import ClipfitError
from .base import Step, register_method, register_preset
from .prompt import FROM_TEMPLATE, PromptConfig, PromptTuning
from .shared import ZeroShotAnchor

CTXV1_HELP = "; 4 from 'a photo of a' (the CoCoOp paper's setting) = 2,048 parameters on ViT-B/16"


@dataclass
class CoOpConfig(PromptConfig):
    n_ctx: int = opt(recipes.COOP_N_CTX, "learned context vectors: 16 for few-shot (the CoOp paper; 8,192 parameters on "
                                         "ViT-B/16), 4 for base-to-new and cross-dataset (the recipe sets them)",
                     range="[1, inf)")
    suffix: str = opt(".", "text after the class name (CoOp: '.'; 'template' = the dataset template's text after '{}')")


CC = TypeVar("CC", bound=CoOpConfig)


@register_method("coop")
class CoOp(PromptTuning[CC]):
    """CoOp: learned context vectors before the class name (16 for few-shot; 4 from 'a photo of a' for base-to-new)."""

    Config = CoOpConfig
    recipe = recipes.COOP


@dataclass
class CoCoOpConfig(CoOpConfig):
    n_ctx: int = opt(recipes.COOP_CTXV1["n_ctx"], "learned context vectors" + CTXV1_HELP, range="[1, inf)")
    ctx_init: str = opt(recipes.COOP_CTXV1["ctx_init"], "words whose token embeddings initialise the last context "
                                                        "vectors (CoCoOp: 'a photo of a')")
    max_prompts: int = opt(4096, "image x class prompts the text encoder takes in one call (memory only: results do "
                                 "not change)", range="[1, inf)")


@register_method("cocoop")
class CoCoOp(CoOp[CoCoOpConfig]):
    """CoCoOp: CoOp's 4 context vectors shifted per image by a meta-net of the image feature (35,360 on ViT-B/16)."""

    Config = CoCoOpConfig
    recipe = recipes.COCOOP
    feature_logits = False  # each image has prompts of its own

    def build(self) -> None:
        super().build()
        d = self.backbone.embed_dim  # the image feature the meta-net reads
        hidden = d // 16
        if hidden < 1:
            raise ClipfitError(f"cocoop: image features of width {d} are too narrow for the meta-net (D/16 < 1)")
        width = self.backbone.model.text_model.embeddings.token_embedding.weight.shape[1]
        self.meta_net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, width))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for layer in self.meta_net:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()  # PyTorch's default initialisation, as the reference

    def text_features(self) -> torch.Tensor:
        """CoCoOp has no class features independent of the image: this is the class prompts' token embeddings
        [C, T, H] (context rows not filled); `logits` builds and encodes each image's prompts from them."""
        return self.prompt_embeds()[0]

    def logits(self, image_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        mask = self._mask.to(text_feats.device)
        shift = self.meta_net(image_feats)  # [B, H], from the normalised image features
        ctx = self.ctx[None] if self.cfg.csc else self.ctx[None, None]  # [1, C or 1, M, H]
        ctx = ctx + shift[:, None, None, :]  # [B, C or 1, M, H]: the same shift for every context vector
        step = max(1, self.cfg.max_prompts // len(self.classnames))
        out = []
        for i in range(0, len(image_feats), step):
            text = self.encode_prompts(ctx[i:i + step], text_feats, mask)  # [b, C, D]
            out.append(torch.einsum("bd,bcd->bc", image_feats[i:i + step].to(text.dtype), text))
        return self.backbone.logit_scale * torch.cat(out)


@dataclass
class KgCoOpConfig(CoOpConfig):
    n_ctx: int = opt(recipes.COOP_CTXV1["n_ctx"], "learned context vectors" + CTXV1_HELP, range="[1, inf)")
    ctx_init: str = opt(recipes.COOP_CTXV1["ctx_init"], "words whose token embeddings initialise the last context "
                                                        "vectors (KgCoOp: 'a photo of a')")
    kg_weight: float = opt(recipes.KGCOOP_WEIGHT, "weight lambda of the knowledge-guidance term (KgCoOp's code: 8 with "
                                                  "kg_form=cosine, which is 4 with kg_form=squared)")
    kg_form: str = opt("cosine", "knowledge-guidance term: cosine = 1 - mean_c cos(w_c, w_c^clip) (KgCoOp's code); "
                                 "squared = mean_c ||w_c - w_c^clip||^2 (its paper) = 2 x cosine for unit vectors",
                       ("cosine", "squared"))


@register_method("kgcoop")
class KgCoOp(CoOp[KgCoOpConfig]):
    """KgCoOp: CoOp (4 vectors from 'a photo of a') kept near the zero-shot class text features (lambda 8)."""

    Config = KgCoOpConfig
    recipe = recipes.KGCOOP
    term_weights = {"kg": "kg_weight"}

    def build(self) -> None:
        super().build()
        self.anchor = ZeroShotAnchor(self.zero_shot_text_features) if self.cfg.kg_weight else None

    def kg_term(self, text_feats: torch.Tensor) -> torch.Tensor:
        """The distance of the class text features [C, D] (normalised) to the frozen zero-shot ones, in fp32."""
        if self.anchor is None:
            raise RuntimeError("kgcoop with kg_weight=0 has no zero-shot features")
        if self.cfg.kg_form == "squared":
            return self.anchor.squared_distance(text_feats)
        return self.anchor.cosine_distance(text_feats)

    def loss(self, step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(step.logits.float(), step.labels)
        if self.anchor is None:
            return ce, {"ce": float(ce.detach())}
        kg = self.kg_term(step.text)
        return ce + self.cfg.kg_weight * kg, {"ce": float(ce.detach()), "kg": float(kg.detach())}


@dataclass
class ProGradConfig(CoOpConfig):
    ctx_init: str = opt(FROM_TEMPLATE, "words whose token embeddings initialise the last context vectors ('template' "
                                       "= the dataset template's words before '{}', ProGrad's initialisation)")
    ctx_rest: str = opt("zeros", "context vectors ctx_init does not cover: zeros (ProGrad) or normal = N(0, 0.02^2)",
                        ("normal", "zeros"))
    suffix: str = opt(FROM_TEMPLATE, "text after the class name ('template' = the dataset template's text after '{}', "
                                     "so the initial prompt reads as the template after the zero vectors)")
    prograd_lambda: float = opt(recipes.PROGRAD_LAMBDA, "share of the cross-entropy gradient's component along the "
                                                        "distillation gradient removed when they conflict (1: all; "
                                                        "ProGrad uses 0.8 for 8/16-shot Flowers, DTD, EuroSAT)")
    temperature: float = opt(recipes.PROGRAD_T, "distillation temperature T (loss scaled by T^2)")


def prograd_direction(g_ce: torch.Tensor, g_kd: torch.Tensor | None, lam: float) -> torch.Tensor:
    """ProGrad's update direction for one parameter tensor: g_ce, minus lam times its projection on g_kd when the two
    conflict (g_ce . g_kd < 0). A zero (or absent) g_kd leaves g_ce unchanged (the reference divides by its norm)."""
    if g_kd is None:
        return g_ce
    dot = (g_ce * g_kd).sum()
    norm2 = (g_kd * g_kd).sum()
    coef = torch.where((dot < 0) & (norm2 > 0), dot / norm2.clamp_min(torch.finfo(norm2.dtype).tiny), 0.0)
    return g_ce - lam * coef * g_kd


@register_method("prograd")
class ProGrad(CoOp[ProGradConfig]):
    """ProGrad: CoOp (16 vectors, template init) whose gradient never opposes distillation to zero-shot CLIP."""

    Config = ProGradConfig
    recipe = recipes.PROGRAD
    term_weights = {"kd": "prograd_lambda"}

    def build(self) -> None:
        super().build()
        if self.cfg.layernorm and self.cfg.layernorm_tower in ("both", "vision"):
            raise ClipfitError("prograd's zero-shot teacher reads the training images' features from the frozen image "
                               "encoder; use layernorm_tower=text with layernorm=true")
        self.anchor = ZeroShotAnchor(self.zero_shot_text_features)

    def forward_teacher(self, step: Step) -> None:
        """The teacher's logits for this training batch: zero-shot CLIP's, from the same image features."""
        assert self.anchor is not None
        step.teacher["logits"] = self.anchor.logits(step.image.detach(), self.backbone.logit_scale)

    def kd_loss(self, logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """T^2 x mean_i sum_c softmax(teacher_i / T)_c x (-log softmax(logits_i / T)_c) (soft cross-entropy)."""
        t = self.cfg.temperature
        p = F.softmax(teacher / t, dim=-1)
        return -(p * F.log_softmax(logits.float() / t, dim=-1)).sum(-1).mean() * t * t

    def loss(self, step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(step.logits.float(), step.labels)
        if "logits" not in step.teacher:
            raise RuntimeError("prograd: no teacher logits for this batch (forward_teacher not called?)")
        kd = self.kd_loss(step.logits, step.teacher["logits"])
        step.terms.update(ce=ce, kd=kd)
        return ce, {"ce": float(ce.detach()), "kd": float(kd.detach())}

    def backward(self, step: Step) -> None:
        """Gradients of CE and KD separately (two passes), then each trainable tensor's `.grad` = ProGrad's direction."""
        ce, kd = step.terms["ce"], step.terms["kd"]
        params = list(self.trainable().values())
        g_kd = torch.autograd.grad(kd, params, retain_graph=True, allow_unused=True)
        g_ce = torch.autograd.grad(ce, params, allow_unused=True)
        for p, a, b in zip(params, g_ce, g_kd):
            p.grad = None if a is None else prograd_direction(a, b, self.cfg.prograd_lambda)


register_preset("coop+ln", "coop", "CoOp with the image encoder's LayerNorms tuned together (CLIPFit Table 4, '+UL')",
                layernorm=True, layernorm_tower="vision")
register_preset("kgcoop+ln", "kgcoop", "KgCoOp with the image encoder's LayerNorms tuned together (CLIPFit Table 4, "
                "'+UL')", layernorm=True, layernorm_tower="vision")

"""PromptSRC: self-regulating prompts (Khattak et al., "Self-regulating Prompts: Foundational Model Adaptation without
Forgetting", ICCV 2023).

Learned: independent deep prompts in both towers (the deep-prompt mechanism of `deep_prompts`): text, 4 tokens
per layer for layers 1..9 (P_0 initialised from "a photo of a"); image, 4 tokens per layer for layers 1..9
(~ N(0, 0.02^2)). ViT-B/16: 9 x 4 x 512 + 9 x 4 x 768 = 46,080 parameters.

Loss, toward the frozen model: CE + 25 * L1(t, t_zs) + 10 * L1(f, f_zs) + 1 * KL(p_zs || p), where t are the
prompted class text features and t_zs the frozen model's, averaged over templates (mean of the unnormalised
features, then normalised); f, f_zs the prompted and frozen image features of the batch; p, p_zs the softmax of the
prompted logits and of the zero-shot logits s * f_zs t_zs^T; L1 is the mean absolute difference of the normalised
features, KL is summed over batch and classes and divided by their product (as the reference code).

The frozen image features come from the same image tower run with the prompts switched off (under no_grad; the
tower's weights are not trained, and any that are, e.g. with layernorm=true, are read at their values when training
started), so no second copy of the model is held. The frozen text features are computed once before training.

Gaussian prompt aggregation (GPA): after epoch e of E the trained parameters are added to a running sum with weight
w_e = N(e; mean, std) / sum_e' N(e'; mean, std); after the last epoch the sum replaces them. Only trainable
parameters are aggregated (the reference sums the whole state dict, frozen CLIP weights included).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import recipes
from ..config import opt
from ..errors import ClipfitError
from .base import Step, register_method
from .deep_prompts import PROMPT_STD, DeepPromptConfig, DeepPromptMethod
from .shared import ZeroShotAnchor
from .zeroshot import IMAGENET_TEMPLATES, resolve_templates

# PromptSRC's teacher templates: the first 60 of CLIP's 80 ImageNet templates (its code lists them with
# "a photo of a {}." moved to the front; the order does not matter for a mean).
PROMPTSRC_TEMPLATES = IMAGENET_TEMPLATES[:60]
GPA_PREFIX = "gpa_sum."  # the running GPA sum while training (kept in the checkpoint, so --resume continues it)
_B2N_GPA = recipes.PROMPTSRC_GPA["base2new"]
TEACHER_BATCH = 1024  # prompts per forward pass when encoding the teacher's template x class prompts


def gpa_weights(epochs: int, mean: float, std: float) -> torch.Tensor:
    """Normalised Gaussian weights of epochs 1..E (float64; computed from log-densities, so a far-away mean cannot
    underflow to 0/0)."""
    e = torch.arange(1, epochs + 1, dtype=torch.float64, device="cpu")  # a host-side schedule: read with float()
    return torch.softmax(-0.5 * ((e - mean) / std) ** 2, dim=0)


def kl_to_teacher(logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(teacher) || softmax(logits)) summed over the batch and classes, divided by their product."""
    return F.kl_div(F.log_softmax(logits, dim=-1), F.log_softmax(teacher_logits, dim=-1), reduction="sum",
                    log_target=True) / logits.numel()


@dataclass
class PromptSRCConfig(DeepPromptConfig):
    n_ctx: int = opt(4, "learned text tokens per layer (PromptSRC: 4)", range="[1, inf)")
    depth: int = opt(9, "text prompt depth: layers 1..J receive prompts (capped at the encoder's number of layers)",
                     range="[1, inf)")
    n_ctx_vision: int = opt(4, "learned image tokens per layer (PromptSRC: 4)", range="[1, inf)")
    depth_vision: int = opt(9, "image prompt depth (capped at the encoder's number of layers)", range="[1, inf)")
    text_weight: float = opt(25.0, "weight of the L1 distance to the frozen text features")
    image_weight: float = opt(10.0, "weight of the L1 distance to the frozen image features")
    logit_weight: float = opt(1.0, "weight of the KL divergence from the frozen zero-shot logits")
    teacher_templates: str = opt("promptsrc60", "templates of the frozen text features: promptsrc60 (the first 60 of "
                                                "CLIP's ImageNet templates, as PromptSRC), imagenet80, dataset, or a "
                                                "'|'-separated list with {} for the class name",
                                  check=lambda key, value: value.strip() == "promptsrc60" or resolve_templates(value, key))
    gpa: bool = opt(True, "Gaussian prompt aggregation over epochs (the last epoch's weights replaced by the "
                          "aggregate; with select=best the best epoch's are kept instead)")
    gpa_mean: float = opt(_B2N_GPA[0], "GPA mean epoch (the recipe sets it by protocol)")
    gpa_std: float = opt(_B2N_GPA[1], "GPA standard deviation in epochs (the recipe sets it by protocol)")


@register_method("promptsrc")
class PromptSRC(DeepPromptMethod[PromptSRCConfig]):
    """PromptSRC: deep prompts in both towers (4 tokens, depth 9), L1/KL toward the frozen model, GPA (46,080 on ViT-B/16)."""

    Config = PromptSRCConfig
    recipe = recipes.PROMPTSRC
    term_weights = {"l1_text": "text_weight", "l1_image": "image_weight", "kl": "logit_weight"}

    def build_vision(self) -> tuple[int, int]:
        cfg = self.cfg
        if cfg.gpa and cfg.gpa_std <= 0:
            raise ClipfitError(f"--set gpa_std={cfg.gpa_std}: must be positive (or --set gpa=false)")
        vm = self.backbone.model.vision_model
        depth = min(cfg.depth_vision, len(vm.encoder.layers))
        self.vision_prompts = nn.Parameter(torch.zeros(depth, cfg.n_ctx_vision, vm.config.hidden_size))
        self.anchor = ZeroShotAnchor(self.teacher_text_features)
        self._frozen_vision: dict[str, torch.Tensor] = {}
        return cfg.n_ctx_vision, depth

    def vision_prompt(self, j: int) -> torch.Tensor:
        return self.vision_prompts[j]

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():
            self.vision_prompts.normal_(0.0, PROMPT_STD)
        self._gpa_sum: dict[str, torch.Tensor] | None = None
        self._gpa_done = False

    # -- the frozen model --------------------------------------------------------------------------------------
    def teacher_templates(self) -> list[str]:
        spec = self.cfg.teacher_templates.strip()
        return list(PROMPTSRC_TEMPLATES) if spec == "promptsrc60" else resolve_templates(spec) or self.templates

    def teacher_text_features(self) -> torch.Tensor:
        """The frozen text tower's class features averaged over the teacher templates (the mean of the unnormalised
        features, then normalised; the prompts are off outside `text_features`)."""
        bb, templates = self.backbone, self.teacher_templates()
        texts = [t.format(c) for t in templates for c in self.classnames]
        feats = torch.cat([bb.encode_text(bb.tokenize(texts[i:i + TEACHER_BATCH]), normalize=False).float()
                           for i in range(0, len(texts), TEACHER_BATCH)])
        return F.normalize(feats.view(len(templates), len(self.classnames), -1).mean(0), dim=-1)

    def on_train_start(self) -> None:
        super().on_train_start()  # the zero-shot text features
        self._frozen_vision = {n.removeprefix("vision_model."): p.detach().clone() for n, p in
                               self.backbone.model.named_parameters() if p.requires_grad and n.startswith("vision_model.")}

    def teacher_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised features of the frozen image tower: the prompts off, trainable tower weights at their values when
        training started."""
        model = self.backbone.model
        if not self._frozen_vision:
            return self.backbone.encode_image(pixel_values)
        family = self.backbone.family
        out = torch.func.functional_call(model.vision_model, self._frozen_vision, (),
                                         family.vision_inputs(model, pixel_values)).pooler_output
        projection = family.parts(model).vision.projection  # None: the pooled feature is the embedding (SigLIP)
        return F.normalize(out if projection is None else projection(out), dim=-1)

    def forward_teacher(self, step: Step) -> None:
        with torch.no_grad():
            step.teacher["image"] = self.teacher_image_features(step.inputs)

    def loss(self, step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        if self.anchor is None or "image" not in step.teacher:
            raise RuntimeError("promptsrc: forward_teacher must come before loss")
        logits, teacher = step.logits.float(), step.teacher["image"].float()  # fp32 whatever the autocast precision
        ce = F.cross_entropy(logits, step.labels)
        l_text = self.anchor.l1_distance(step.text)
        l_image = F.l1_loss(step.image.float(), teacher)
        kl = kl_to_teacher(logits, self.anchor.logits(teacher, self.backbone.logit_scale))
        cfg = self.cfg
        total = ce + cfg.text_weight * l_text + cfg.image_weight * l_image + cfg.logit_weight * kl
        return total, {"ce": float(ce.detach()), "l1_text": float(l_text.detach()), "l1_image": float(l_image.detach()),
                       "kl": float(kl.detach())}

    # -- Gaussian prompt aggregation ---------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int, epochs: int) -> None:
        if not self.cfg.gpa:
            return
        w = float(gpa_weights(epochs, self.cfg.gpa_mean, self.cfg.gpa_std)[epoch - 1])
        params = self.trainable()
        if self._gpa_sum is None:
            self._gpa_sum = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
        with torch.no_grad():
            for n, p in params.items():
                self._gpa_sum[n] += w * p.detach().float()
            if epoch == epochs:  # so the last validation already sees the aggregate
                for n, p in params.items():
                    p.copy_(self._gpa_sum[n].to(p.dtype))

    def on_train_end(self) -> None:
        self._gpa_sum, self._gpa_done = None, True  # the run's weights are the aggregate; the sum is not saved

    def stored_state(self) -> dict[str, torch.Tensor]:
        out = super().stored_state()
        for n, t in (self._gpa_sum or {}).items():
            out[GPA_PREFIX + n] = t
        return out

    def load_stored_state(self, state: dict[str, torch.Tensor]) -> set[str]:
        used = super().load_stored_state(state)
        gpa = {k: v for k, v in state.items() if k.startswith(GPA_PREFIX)}
        if gpa and not self._gpa_done:  # resuming: continue the running sum
            params = self.trainable()
            self._gpa_sum = {k.removeprefix(GPA_PREFIX): v.float().to(params[k.removeprefix(GPA_PREFIX)].device)
                             for k, v in gpa.items()}
        return used | set(gpa)

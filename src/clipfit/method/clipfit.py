"""CLIPFit: tune the text encoder's FFN second-linear biases and the image encoder's LayerNorms.

Loss: CE + beta * (1 - mean_i cos(w_i, w_i^clip)), w^clip being the class text features of the frozen
zero-shot model, computed once at the start of training (no second model runs per step). The paper's equation 4
prints L_kg = mean_i cos(w_i^clip, w_i) itself, whose minimisation would push the tuned features away from the
zero-shot ones; we minimise 1 - mean cos, as its text describes (distillation toward zero-shot CLIP) and its
reference trainer computes. Its appendix also sets a "smoothing parameter alpha = 0.99" that no equation uses and
the reference trainer does not apply: nothing here smooths. Alternative regulariser: MSE between tuned and
pre-trained biases, (1/L) sum_l ||b_l - b_l^clip||^2. The bias-tuning strategies of CLIPFit's Table 5 are the
`bias` option: (a) text_image, (b) text, (c) ffn, (d) ffn_out; that table trains with cross-entropy only
(`reg=none`) and without the image LayerNorms (`image_layernorm=false`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import recipes
from ..backbone import layernorms, parameter_group
from ..config import opt
from .base import (
    Method,
    MethodConfig,
    Step,
    block_index,
    keep_layers,
    parameter_group_of,
    register_method,
    register_preset,
)
from .shared import ZeroShotAnchor

BIAS_GROUPS = {
    "ffn_out": ["text_ffn_out_bias"],  # Table 5 (d), CLIPFit's choice
    "ffn": ["text_ffn_bias"],  # (c)
    "text": ["text_bias"],  # (b)
    "text_image": ["text_bias", "vision_bias"],  # (a)
    "none": [],
}


@dataclass
class CLIPFitConfig(MethodConfig):
    bias: str = opt("ffn_out", "text biases tuned (CLIPFit Table 5): ffn_out (d), ffn (c), text (b), text_image (a), "
                               "none; Table 5 trains them with cross-entropy only: add reg=none image_layernorm=false",
                    tuple(BIAS_GROUPS))
    image_layernorm: bool = opt(True, "tune the image encoder's LayerNorms")
    reg: str = opt("kd", "regulariser: kd = 1 - mean cosine to the zero-shot text features (equation 4 as printed "
                         "has the sign reversed), mse (on tuned biases), none", ("kd", "mse", "none"))
    beta: float = opt(8.0, "KD weight (the recipe sets the paper's: 8 base-to-new and cross-dataset; 2 few-shot and "
                           "domain shift; 8 few-shot DTD/SUN397)", range="[0, inf)")
    mse_weight: float = opt(1.0, "weight of the bias MSE regulariser when reg=mse (the paper gives no value)", range="[0, inf)")
    ln_layers: str = opt("all", "image LayerNorm layers tuned (CLIPFit Sec. 4.3): all, or e.g. 1 / 12 / last / top6 / "
                                "1-6,last (1-based, depth order: 1 is the patch-embedding LayerNorm); topK: the K "
                                "most changed in the run `layers_from`")
    bias_layers: str = opt("all", "encoder blocks whose text biases are tuned (CLIPFit appendix H): all, or e.g. 1 / 6 "
                                  "/ last / top3 / last3 (1-based); biases outside the blocks are frozen when not all")
    layers_from: str = opt("", "run directory trained with record=change whose recorded change ranks the layers for "
                               "topK")


@register_method("clipfit")
class CLIPFit(Method[CLIPFitConfig]):
    """CLIPFit (text FFN output biases + image LayerNorms, KD to zero-shot text features)."""

    Config = CLIPFitConfig
    recipe = recipes.CLIPFIT
    term_weights = {"kd": "beta", "mse": "mse_weight"}

    def build(self) -> None:
        groups = list(BIAS_GROUPS[self.cfg.bias])
        if self.cfg.image_layernorm:
            groups.append("vision_layernorm")
        self.unfreeze(*groups)
        model = self.backbone.model
        cfg = self.cfg
        change = self.layer_change  # the engine read it from the run `layers_from` names
        if cfg.image_layernorm and cfg.ln_layers != "all":
            keep_layers(self, [parameter_group_of(model, m) for _, m in layernorms(model.vision_model)], cfg.ln_layers,
                        "ln_layers", change)
        bias = [n for g in BIAS_GROUPS[cfg.bias] for n in parameter_group(model, g)]
        if cfg.bias_layers != "all":
            blocks = model.config.text_config.num_hidden_layers
            keep_layers(self, [[n for n in bias if block_index(n) == i and n.startswith("text")] for i in range(blocks)],
                        cfg.bias_layers, "bias_layers", change)
            for n in bias:  # text biases outside the encoder blocks (and the image's) are not layers: frozen
                if block_index(n) is None or not n.startswith("text"):
                    dict(model.named_parameters())[n].requires_grad_(False)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        self._bias_names = [n for n in bias if n in trainable]
        # the zero-shot features: this method's own text features before anything trained
        self.anchor = ZeroShotAnchor(self.text_features) if cfg.reg == "kd" and cfg.beta else None
        self._bias_init: dict[str, torch.Tensor] = {}

    def on_train_start(self) -> None:
        super().on_train_start()
        if self.cfg.reg == "mse":
            params = dict(self.backbone.model.named_parameters())
            self._bias_init = {n: params[n].detach().clone() for n in self._bias_names}

    def loss(self, step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(step.logits.float(), step.labels)
        parts = {"ce": float(ce.detach())}
        total = ce
        if self.anchor is not None:
            kd = self.anchor.cosine_distance(step.text)
            total = total + self.cfg.beta * kd
            parts["kd"] = float(kd.detach())
        elif self.cfg.reg == "mse" and self._bias_names:
            params = dict(self.backbone.model.named_parameters())
            mse = sum(((params[n].float() - b.float()) ** 2).sum() for n, b in self._bias_init.items()) / len(self._bias_init)
            total = total + self.cfg.mse_weight * mse
            parts["mse"] = float(mse.detach())
        return total, parts


# CLIPFit's ablations (its Tables 5 and 6), as presets: `clipfit paper run clipfit:table5` / `clipfit:table6` run them.
_CE_ONLY = {"reg": "none", "image_layernorm": False}
register_preset("clipfit:text_image_bias", "clipfit", "CLIPFit Table 5 (a): every bias of both encoders, cross-entropy "
                "only", bias="text_image", **_CE_ONLY)
register_preset("clipfit:text_bias", "clipfit", "CLIPFit Table 5 (b): every bias of the text encoder, cross-entropy only",
                bias="text", **_CE_ONLY)
register_preset("clipfit:ffn_bias", "clipfit", "CLIPFit Table 5 (c): the biases of the text encoder's FFNs, "
                "cross-entropy only", bias="ffn", **_CE_ONLY)
register_preset("clipfit:proj_bias", "clipfit", "CLIPFit Table 5 (d) and Table 6 'Projection Bias': the text FFN output "
                "biases only, cross-entropy only", **_CE_ONLY)
register_preset("clipfit:no_kd", "clipfit", "CLIPFit Table 6 'w/ LayerNorm': CLIPFit without the KD term", reg="none")
register_preset("clipfit:no_ln", "clipfit", "CLIPFit Table 6 'w/ KD loss': CLIPFit with the image LayerNorms frozen",
                image_layernorm=False)

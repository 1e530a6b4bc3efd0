"""Markdown table of trainable-parameter counts on each family's base architecture, computed from the family
adapters' declarations on random (meta-device) models: python scripts/family_counts.py

CLIPFit = text FFN output biases + image LayerNorms; CoOp = n_ctx context vectors of the text width; CLIP-LoRA =
rank-r factors (A: r x in, B: out x r) on the q, k, v Linears of every layer of both towers.
"""
from __future__ import annotations

import torch

from clipfit.backbone import clip_config
from clipfit.families import FAMILIES
from clipfit.families.archs import ARCHS, arch_model
from clipfit.recipes import COOP_N_CTX

RANK = 2


def row(arch: str, family, model) -> str:
    p = family.parts(model)
    ffn, ln = family.count(model, "text_ffn_out_bias"), family.count(model, "vision_layernorm")
    lora = sum(RANK * (lin.in_features + lin.out_features) for tp in (p.text, p.vision) for qkv in tp.qkv()
               for lin in qkv)
    return (f"| {arch} | {family.name} | {ffn:,} + {ln:,} = {ffn + ln:,} | {COOP_N_CTX * p.token_embedding.embedding_dim:,} "
            f"| {lora:,} |")


def main() -> None:
    from transformers import CLIPModel

    print(f"| architecture | family | CLIPFit (text FFN out biases + image LayerNorms) | CoOp ({COOP_N_CTX} ctx) "
          f"| CLIP-LoRA q,k,v r={RANK} |")
    print("|---|---|---|---:|---:|")
    with torch.device("meta"):
        clip = CLIPModel(clip_config("ViT-B/16"))
    print(row("ViT-B/16", FAMILIES.get("clip"), clip))
    for arch in ARCHS:
        print(row(arch, *arch_model(arch)))


if __name__ == "__main__":
    main()

"""Synthetic VMamba checkpoints in VMamba's own key formats, for the tests that load them (2D, 3D, warm start).

``vmamba_v0_state_dict`` is a VMamba v0 classifier's state dict with random values; ``v0_to_v2_names`` renames it as
VMamba's later releases name their keys (docs/architecture.md, "Pretrained weights").
"""
import math
import re

import torch

DIMS = (8, 16, 32, 64)
D_STATE = 16


def vmamba_v0_state_dict(in_chans=3, dims=DIMS, depths=(2, 2, 3, 2), d_state=D_STATE, num_classes=10, seed=0):
    """A VMamba v0 classifier's state dict (v0 names and shapes, docs/architecture.md "Pretrained weights"), random values."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {"patch_embed.proj.weight": (dims[0], in_chans, 4, 4), "patch_embed.proj.bias": (dims[0],),
              "patch_embed.norm.weight": (dims[0],), "patch_embed.norm.bias": (dims[0],)}
    for i, (C, depth) in enumerate(zip(dims, depths)):
        d_inner, rank = 2 * C, math.ceil(C / 16)
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            shapes.update({
                p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
                p + "self_attention.in_proj.weight": (2 * d_inner, C),
                p + "self_attention.conv2d.weight": (d_inner, 1, 3, 3),
                p + "self_attention.conv2d.bias": (d_inner,),
                p + "self_attention.x_proj_weight": (4, rank + 2 * d_state, d_inner),
                p + "self_attention.dt_projs_weight": (4, d_inner, rank),
                p + "self_attention.dt_projs_bias": (4, d_inner),
                p + "self_attention.A_logs": (4 * d_inner, d_state),
                p + "self_attention.Ds": (4 * d_inner,),
                p + "self_attention.out_norm.weight": (d_inner,), p + "self_attention.out_norm.bias": (d_inner,),
                p + "self_attention.out_proj.weight": (C, d_inner)})
        if i + 1 < len(dims):
            p = f"layers.{i}.downsample."
            shapes.update({p + "norm.weight": (4 * C,), p + "norm.bias": (4 * C,),
                           p + "reduction.weight": (dims[i + 1], 4 * C)})
    shapes.update({"norm.weight": (dims[-1],), "norm.bias": (dims[-1],),
                   "head.weight": (num_classes, dims[-1]), "head.bias": (num_classes,)})
    return {k: torch.randn(s, generator=gen) for k, s in shapes.items()}


def v0_to_v2_names(sd):
    """VMamba HEAD's renames (VSSM._load_from_state_dict), plus the v2 block's extra MLP and a conv downsample."""
    out = {}
    for k, v in sd.items():
        k = k.replace("patch_embed.proj.", "patch_embed.0.").replace("patch_embed.norm.", "patch_embed.2.")
        k = re.sub(r"(blocks\.\d+\.)ln_1\.", r"\1norm.", k)
        k = re.sub(r"(blocks\.\d+\.)self_attention\.", r"\1op.", k)
        k = re.sub(r"^norm\.", "classifier.norm.", k)
        k = re.sub(r"^head\.", "classifier.head.", k)
        if ".downsample." not in k:
            out[k] = v
    for i, C in enumerate(DIMS):
        out[f"layers.{i}.blocks.0.norm2.weight"] = torch.ones(C)
        out[f"layers.{i}.blocks.0.mlp.fc1.weight"] = torch.ones(4 * C, C)
        if i + 1 < len(DIMS):
            out[f"layers.{i}.downsample.1.weight"] = torch.ones(DIMS[i + 1], C, 3, 3)
    out["layers.0.blocks.1.op.in_proj.weight"] = torch.ones(2 * DIMS[0], DIMS[0])  # a `_noz` in_proj: no z half
    return out

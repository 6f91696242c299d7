"""Patch embedding, merging (down x2) and expanding (up x2 / x4) layers, channel-last (docs/architecture.md, "Shared layers")."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class PatchEmbed2D(nn.Module):
    """Conv(k = s = patch) then LayerNorm: (B, C_in, H, W) -> (B, H/patch, W/patch, dim). Keys ``proj``, ``norm``."""

    def __init__(self, in_chans: int, dim: int, patch_size: int = 4):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class PatchMerging2D(nn.Module):
    """Swin-order 2x2 concat, LayerNorm(4C), Linear(4C -> out, no bias): (B, H, W, C) -> (B, H/2, W/2, out).

    H and W must be even (the networks pad their input so they are). Keys ``norm``, ``reduction``.
    """

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class PatchExpand(nn.Module):
    """Linear(in -> scale²·out, no bias), pixel-shuffle by ``scale``, LayerNorm(out):
    (B, H, W, in_dim) -> (B, scale·H, scale·W, out_dim). Keys ``expand``, ``norm``.

    This one operation is each original network's expanding layer, with its widths:
    Mamba-UNet ``PatchExpand(d)`` = (d, d/2, 2) and ``FinalPatchExpand_X4(96)`` = (96, 96, 4);
    VM-UNet ``PatchExpand2D(d)`` = (2d, d, 2) and ``Final_PatchExpand2D(96)`` = (96, 24, 4).
    """

    def __init__(self, in_dim: int, out_dim: int, scale: int = 2):
        super().__init__()
        self.scale = scale
        self.expand = nn.Linear(in_dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(self.expand(x), "b h w (p1 p2 c) -> b (h p1) (w p2) c", p1=self.scale, p2=self.scale)
        return self.norm(x)

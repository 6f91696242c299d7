"""Patch embedding, merging (down) and expanding (up) layers on images or volumes, channel-last, with a factor per
axis (docs/architecture.md, "Shared layers"; docs/three_d.md, "Geometry")."""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
from einops import rearrange
from torch import nn

from nnunetv2_mamba.nets.ss2d import CONVOLUTIONS


class PatchEmbed(nn.Module):
    """Conv(k = s = patch) then LayerNorm: (B, C_in, *S) -> (B, *S/patch, dim). Keys ``proj``, ``norm``."""

    def __init__(self, in_chans: int, dim: int, patch_size: Sequence[int] = (4, 4)):
        super().__init__()
        self.proj = CONVOLUTIONS[len(patch_size)](in_chans, dim, kernel_size=tuple(patch_size),
                                                  stride=tuple(patch_size))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).movedim(1, -1))


def neighbourhood_offsets(factors: Sequence[int]) -> list[tuple[int, ...]]:
    """Offsets of the voxels one merging concatenates, first axis fastest: Swin's (0,0), (1,0), (0,1), (1,1) in 2D."""
    return [offset[::-1] for offset in itertools.product(*(range(f) for f in reversed(factors)))]


class PatchMerging(nn.Module):
    """Concat of each ``factors`` neighbourhood (Swin order, :func:`neighbourhood_offsets`), LayerNorm(n·C),
    Linear(n·C -> out, no bias), n = prod(factors): (B, *S, C) -> (B, *S/factors, out).

    Every axis must divide by its factor (the networks pad their input so they do). Keys ``norm``, ``reduction``.
    In 2D with factors (2, 2) this is VMamba's ``PatchMerging2D``.
    """

    def __init__(self, dim: int, out_dim: int, factors: Sequence[int] = (2, 2)):
        super().__init__()
        self.factors = tuple(factors)
        self.norm = nn.LayerNorm(math.prod(factors) * dim)
        self.reduction = nn.Linear(math.prod(factors) * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [x[(slice(None), *(slice(o, None, f) for o, f in zip(offset, self.factors)))]
                 for offset in neighbourhood_offsets(self.factors)]
        return self.reduction(self.norm(torch.cat(parts, dim=-1)))


class PatchExpand(nn.Module):
    """Linear(in -> prod(scale)·out, no bias), pixel-shuffle by ``scale`` (per axis), LayerNorm(out):
    (B, *S, in_dim) -> (B, *S·scale, out_dim). Keys ``expand``, ``norm``.

    This one operation is each original network's expanding layer, with its widths:
    Mamba-UNet ``PatchExpand(d)`` = (d, d/2, (2, 2)) and ``FinalPatchExpand_X4(96)`` = (96, 96, (4, 4));
    VM-UNet ``PatchExpand2D(d)`` = (2d, d, (2, 2)) and ``Final_PatchExpand2D(96)`` = (96, 24, (4, 4)).
    """

    def __init__(self, in_dim: int, out_dim: int, scale: Sequence[int] = (2, 2)):
        super().__init__()
        self.scale = tuple(scale)
        self.expand = nn.Linear(in_dim, math.prod(scale) * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)
        axes = range(len(self.scale))
        self.pattern = (f"b {' '.join(f'a{i}' for i in axes)} ({' '.join(f'p{i}' for i in axes)} c) -> "
                        f"b {' '.join(f'(a{i} p{i})' for i in axes)} c")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(self.expand(x), self.pattern, **{f"p{i}": s for i, s in enumerate(self.scale)})
        return self.norm(x)

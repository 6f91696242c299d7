"""The VMamba v0 encoder both networks share (patch embedding, VSS stages with patch merging), 2D or 3D."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from nnunetv2_mamba.nets.geometry import Geometry
from nnunetv2_mamba.nets.patches import PatchEmbed, PatchMerging
from nnunetv2_mamba.nets.ss2d import make_blocks


def stage_drop_path_rates(drop_path_rate: float, depths: Sequence[int]) -> list[list[float]]:
    """Stochastic depth rising linearly from 0 to ``drop_path_rate`` over all blocks, split per stage."""
    rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
    starts = [sum(depths[:i]) for i in range(len(depths))]
    return [rates[start:start + depth] for start, depth in zip(starts, depths)]


class EncoderLayer(nn.Module):
    """VSS blocks, then PatchMerging unless last: (B, *S, dim) -> (B, *S/merge_factors, out_dim) or (B, *S, dim)."""

    def __init__(self, dim: int, drop_path_rates: Sequence[float], d_state: int, out_dim: int | None,
                 mixer: Callable[..., nn.Module], merge_factors: Sequence[int] | None):
        super().__init__()
        self.blocks = make_blocks(dim, drop_path_rates, d_state, mixer)
        self.downsample = PatchMerging(dim, out_dim, merge_factors) if out_dim is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        return x if self.downsample is None else self.downsample(x)


class VSSEncoder(nn.Module):
    """(B, C_in, *S) -> (skips, out), channel-last.

    ``skips[i]`` is stage i's input, (B, *S / stage_strides[i], dims[i]); ``out`` is the last stage's output
    (B, *S / stage_strides[-1], dims[-1]), LayerNorm'ed when ``final_norm`` (strides from ``geometry``).
    Keys: ``patch_embed.{proj,norm}.*``, ``layers.{i}.blocks.{j}.{ln_1,self_attention}.*``,
    ``layers.{i}.downsample.{norm,reduction}.*``, ``norm.*`` (VMamba v0's names under this module).
    """

    def __init__(self, in_chans: int, dims: Sequence[int], depths: Sequence[int], d_state: int,
                 drop_path_rate: float, final_norm: bool, geometry: Geometry):
        super().__init__()
        self.patch_embed = PatchEmbed(in_chans, dims[0], geometry.patch_size)
        rates = stage_drop_path_rates(drop_path_rate, depths)
        last = len(dims) - 1
        self.layers = nn.ModuleList(
            EncoderLayer(dims[i], rates[i], d_state, dims[i + 1] if i < last else None, geometry.mixer(),
                         geometry.merge_factors[i] if i < last else None)
            for i in range(len(dims)))
        self.norm = nn.LayerNorm(dims[-1]) if final_norm else None

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = self.patch_embed(x)
        skips = []
        for layer in self.layers:
            skips.append(x)
            x = layer(x)
        return skips, (x if self.norm is None else self.norm(x))

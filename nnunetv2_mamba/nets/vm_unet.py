"""VM-UNet (Ruan & Xiang, arXiv 2402.02491), size-agnostic (docs/architecture.md, "VM-UNet").

State-dict keys (n = len(dims) stages; the original code's names under ``encoder.`` / ``decoder.``):
- ``encoder.patch_embed.*``, ``encoder.layers.{i}.blocks.{j}.*``, ``encoder.layers.{i}.downsample.*``
  (no final encoder norm; see ``VSSEncoder``);
- ``decoder.layers_up.{i}.upsample.{expand,norm}.*`` (i >= 1) and ``decoder.layers_up.{i}.blocks.{j}.*``,
  ``decoder.final_up.{expand,norm}.*`` (final x4 expand to dims[0]/4 channels), ``decoder.final_conv.*``, and with
  deep supervision ``decoder.aux_heads.{k}.*``.
With ``spatial_dims=3`` the same network runs on volumes (docs/three_d.md): same keys, SS3D blocks (``conv3d``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from nnunetv2_mamba.nets.encoder import VSSEncoder
from nnunetv2_mamba.nets.geometry import DEFAULT_PATCH_SIZE, Geometry, make_geometry
from nnunetv2_mamba.nets.patches import PatchExpand
from nnunetv2_mamba.nets.scan_variants import CROSS_SCAN
from nnunetv2_mamba.nets.ss2d import CONVOLUTIONS, init_vssm_weights, make_blocks
from nnunetv2_mamba.nets.unet_base import DeepSupervisedDecoder, VSSUNet


class ExpandThenBlocks(nn.Module):
    """VM-UNet's ``VSSLayer_up``: optional PatchExpand (B, *S, in_dim) -> (B, *S·scale, dim), then VSS blocks."""

    def __init__(self, dim: int, drop_path_rates: Sequence[float], d_state: int, in_dim: int | None,
                 mixer: Callable[..., nn.Module], scale: Sequence[int] | None):
        super().__init__()
        self.upsample = PatchExpand(in_dim, dim, scale) if in_dim is not None else None
        self.blocks = make_blocks(dim, drop_path_rates, d_state, mixer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x if self.upsample is None else self.upsample(x))


def decoder_drop_path_rates(drop_path_rate: float, decoder_depths: Sequence[int]) -> list[list[float]]:
    """VM-UNet's decoder rates: linspace(0, rate, blocks) reversed (deepest stage first), split per stage."""
    rates = torch.linspace(0, drop_path_rate, sum(decoder_depths)).flip(0).tolist()
    starts = [sum(decoder_depths[:i]) for i in range(len(decoder_depths))]
    return [rates[start:start + depth] for start, depth in zip(starts, decoder_depths)]


class VMUNetDecoder(DeepSupervisedDecoder):
    """(bottleneck (B, *s, dims[-1]), encoder skips) -> logits (B, K, *s·size_divisor), channels first.

    Additive skips: stage i >= 1 gets ``x + skips[-i]`` (the stem's skip is unused, as in the original code).
    ``decoder_depths[i]`` is the depth of decoder stage i counted from the bottom. Deep-supervision heads read
    the outputs of stages 1..n-1.
    """

    def __init__(self, dims: Sequence[int], decoder_depths: Sequence[int], drop_path_rate: float, d_state: int,
                 num_classes: int, deep_supervision: bool, geometry: Geometry):
        n, merges = len(dims), geometry.merge_factors
        super().__init__(dims[:-1], num_classes, deep_supervision, geometry.spatial_dims)
        rates = decoder_drop_path_rates(drop_path_rate, decoder_depths)
        self.layers_up = nn.ModuleList(
            ExpandThenBlocks(dims[n - 1 - i], rates[i], d_state, dims[n - i] if i > 0 else None, geometry.mixer(),
                             merges[n - 1 - i] if i > 0 else None)
            for i in range(n))
        self.final_up = PatchExpand(dims[0], dims[0] // 4, scale=geometry.patch_size)
        self.final_conv = CONVOLUTIONS[geometry.spatial_dims](dims[0] // 4, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]):
        x = self.layers_up[0](x)
        features = []
        for i in range(1, len(self.layers_up)):
            x = self.layers_up[i](x + skips[-i])
            features.append(x)
        logits = self.final_conv(self.final_up(x).movedim(-1, 1))
        return self.assemble(logits, features[::-1])


class VMUNet(VSSUNet):
    """VM-UNet: (B, input_channels, *S) -> raw logits (B, num_classes, *S), any image (H, W) or, with
    ``spatial_dims=3``, any volume (D, H, W) (no sigmoid).

    Defaults are the paper's network (27,427,561 parameters with 3 input channels and 1 class; in 3D at the
    same widths and channels: 33,552,745). ``patch_size``, ``merge_factors`` and ``num_directions`` set the
    geometry and ``scan`` the blocks' scan as in ``MambaUNet``. With ``deep_supervision`` the output is a list of
    logits at ``deep_supervision_scales``.
    """

    def __init__(self, input_channels: int, num_classes: int, *, dims: Sequence[int] = (96, 192, 384, 768),
                 depths: Sequence[int] = (2, 2, 2, 2), decoder_depths: Sequence[int] = (2, 2, 2, 1),
                 d_state: int = 16, drop_path_rate: float = 0.2, deep_supervision: bool = False,
                 spatial_dims: int = 2, patch_size: int | Sequence[int] = DEFAULT_PATCH_SIZE,
                 merge_factors: Sequence[int | Sequence[int]] | None = None, num_directions: int | None = None,
                 scan: str = CROSS_SCAN):
        geometry = make_geometry(spatial_dims, len(dims), patch_size, merge_factors, num_directions, scan)
        super().__init__(input_channels, num_classes, dims, depths, decoder_depths, len(dims), geometry)
        if dims[0] % 4:
            raise ValueError(f"VMUNet's final x4 expand needs dims[0] divisible by 4; got dims={dims}")
        self.encoder = VSSEncoder(input_channels, dims, depths, d_state, drop_path_rate, False, geometry)
        self.decoder = VMUNetDecoder(dims, decoder_depths, drop_path_rate, d_state, num_classes, deep_supervision,
                                     geometry)
        self.apply(init_vssm_weights)

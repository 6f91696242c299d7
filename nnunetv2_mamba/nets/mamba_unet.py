"""Mamba-UNet (Wang et al., arXiv 2402.05079), size-agnostic (docs/architecture.md, "Mamba-UNet").

State-dict keys (n = len(dims) stages; the original code's names under ``encoder.`` / ``decoder.``):
- ``encoder.patch_embed.*``, ``encoder.layers.{i}.blocks.{j}.*``, ``encoder.layers.{i}.downsample.*``,
  ``encoder.norm.*`` (see ``VSSEncoder``);
- ``decoder.layers_up.0.{expand,norm}.*`` (the bare PatchExpand under the bottleneck),
  ``decoder.layers_up.{i}.blocks.{j}.*`` and ``decoder.layers_up.{i}.upsample.*`` for i = 1..n-1 (no upsample at
  i = n-1), ``decoder.concat_back_dim.{i}.{weight,bias}``, ``decoder.norm_up.*``, ``decoder.up.{expand,norm}.*``
  (final x4 expand), ``decoder.output.weight`` (bias-free 1x1 head), and with deep supervision
  ``decoder.aux_heads.{k}.*``.
With ``spatial_dims=3`` the same network runs on volumes (docs/three_d.md): same keys, SS3D blocks (``conv3d``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from nnunetv2_mamba.nets.encoder import VSSEncoder, stage_drop_path_rates
from nnunetv2_mamba.nets.geometry import DEFAULT_PATCH_SIZE, Geometry, make_geometry
from nnunetv2_mamba.nets.patches import PatchExpand
from nnunetv2_mamba.nets.scan_variants import CROSS_SCAN
from nnunetv2_mamba.nets.ss2d import CONVOLUTIONS, init_vssm_weights, make_blocks
from nnunetv2_mamba.nets.unet_base import DeepSupervisedDecoder, VSSUNet


def mirrored_rates(encoder_rates: Sequence[float], depth: int) -> list[float]:
    """The original code reuses the mirrored encoder stage's drop-path rates; stretched evenly when depths differ."""
    return torch.linspace(encoder_rates[0], encoder_rates[-1], depth).tolist()


class BlocksThenExpand(nn.Module):
    """Mamba-UNet's ``VSSLayer_up``: (B, *S, dim) -> (features (B, *S, dim), output).

    The output is ``upsample(features)`` at (B, *S·scale, out_dim), or the features themselves in the last stage.
    """

    def __init__(self, dim: int, drop_path_rates: Sequence[float], d_state: int, out_dim: int | None,
                 mixer: Callable[..., nn.Module], scale: Sequence[int] | None):
        super().__init__()
        self.blocks = make_blocks(dim, drop_path_rates, d_state, mixer)
        self.upsample = PatchExpand(dim, out_dim, scale) if out_dim is not None else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.blocks(x)
        return features, (features if self.upsample is None else self.upsample(features))


class MambaUNetDecoder(DeepSupervisedDecoder):
    """(bottleneck (B, *s, dims[-1]), encoder skips) -> logits (B, K, *s·size_divisor), channels first.

    Concat skips fused by Linear(2d -> d); ``decoder_depths[i]`` is the depth of decoder stage i + 1 counted
    from the bottom. Deep-supervision heads read each stage's block output (before its expand).
    """

    def __init__(self, dims: Sequence[int], decoder_depths: Sequence[int], encoder_rates: Sequence[Sequence[float]],
                 d_state: int, num_classes: int, deep_supervision: bool, geometry: Geometry):
        n, merges = len(dims), geometry.merge_factors
        super().__init__(dims[:-1], num_classes, deep_supervision, geometry.spatial_dims)
        self.layers_up = nn.ModuleList([PatchExpand(dims[-1], dims[-2], merges[-1])])
        self.concat_back_dim = nn.ModuleList([nn.Identity()])
        for i in range(1, n):
            level = n - 1 - i
            rates = mirrored_rates(encoder_rates[level], decoder_depths[i - 1])
            out_dim, scale = (dims[level - 1], merges[level - 1]) if level > 0 else (None, None)
            self.layers_up.append(BlocksThenExpand(dims[level], rates, d_state, out_dim, geometry.mixer(), scale))
            self.concat_back_dim.append(nn.Linear(2 * dims[level], dims[level]))
        self.norm_up = nn.LayerNorm(dims[0])
        self.up = PatchExpand(dims[0], dims[0], scale=geometry.patch_size)
        self.output = CONVOLUTIONS[geometry.spatial_dims](dims[0], num_classes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]):
        n = len(self.layers_up)
        x = self.layers_up[0](x)
        features = []
        for i in range(1, n):
            x = self.concat_back_dim[i](torch.cat([x, skips[n - 1 - i]], dim=-1))
            stage_features, x = self.layers_up[i](x)
            features.append(stage_features)
        logits = self.output(self.up(self.norm_up(x)).movedim(-1, 1))
        return self.assemble(logits, features[::-1])


class MambaUNet(VSSUNet):
    """Mamba-UNet: (B, input_channels, *S) -> raw logits (B, num_classes, *S), any image (H, W) or, with
    ``spatial_dims=3``, any volume (D, H, W).

    Defaults are the paper's ACDC network (19,121,664 parameters with 3 input channels and 4 classes; in 3D at the
    same widths and channels: 24,653,568). ``patch_size``, ``merge_factors`` (per axis or one
    for all) and ``num_directions`` (SS3D's K) set the geometry (nets/geometry.py); ``scan`` picks the blocks'
    scan or a control of it (``"one_way"``, ``"none"``: nets/scan_variants.py). With ``deep_supervision`` the
    output is a list of logits at ``deep_supervision_scales``.
    """

    def __init__(self, input_channels: int, num_classes: int, *, dims: Sequence[int] = (96, 192, 384, 768),
                 depths: Sequence[int] = (2, 2, 2, 2), decoder_depths: Sequence[int] = (2, 2, 2), d_state: int = 16,
                 drop_path_rate: float = 0.2, deep_supervision: bool = False, spatial_dims: int = 2,
                 patch_size: int | Sequence[int] = DEFAULT_PATCH_SIZE,
                 merge_factors: Sequence[int | Sequence[int]] | None = None, num_directions: int | None = None,
                 scan: str = CROSS_SCAN):
        geometry = make_geometry(spatial_dims, len(dims), patch_size, merge_factors, num_directions, scan)
        super().__init__(input_channels, num_classes, dims, depths, decoder_depths, len(dims) - 1, geometry)
        self.encoder = VSSEncoder(input_channels, dims, depths, d_state, drop_path_rate, True, geometry)
        encoder_rates = stage_drop_path_rates(drop_path_rate, depths)
        self.decoder = MambaUNetDecoder(dims, decoder_depths, encoder_rates, d_state, num_classes, deep_supervision,
                                        geometry)
        self.apply(init_vssm_weights)

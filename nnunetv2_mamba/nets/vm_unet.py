"""VM-UNet (Ruan & Xiang, arXiv 2402.02491), size-agnostic (docs/architecture.md, "VM-UNet").

State-dict keys (n = len(dims) stages; the original code's names under ``encoder.`` / ``decoder.``):
- ``encoder.patch_embed.*``, ``encoder.layers.{i}.blocks.{j}.*``, ``encoder.layers.{i}.downsample.*``
  (no final encoder norm; see ``VSSEncoder``);
- ``decoder.layers_up.{i}.upsample.{expand,norm}.*`` (i >= 1) and ``decoder.layers_up.{i}.blocks.{j}.*``,
  ``decoder.final_up.{expand,norm}.*`` (final x4 expand to dims[0]/4 channels), ``decoder.final_conv.*``, and with
  deep supervision ``decoder.aux_heads.{k}.*``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nnunetv2_mamba.nets.encoder import PATCH_SIZE, VSSEncoder
from nnunetv2_mamba.nets.patches import PatchExpand
from nnunetv2_mamba.nets.ss2d import init_vssm_weights, make_blocks
from nnunetv2_mamba.nets.unet_base import DeepSupervisedDecoder, VSSUNet


class ExpandThenBlocks(nn.Module):
    """VM-UNet's ``VSSLayer_up``: optional PatchExpand (B, H, W, in_dim) -> (B, 2H, 2W, dim), then VSS blocks."""

    def __init__(self, dim: int, drop_path_rates: Sequence[float], d_state: int, in_dim: int | None):
        super().__init__()
        self.upsample = PatchExpand(in_dim, dim) if in_dim is not None else None
        self.blocks = make_blocks(dim, drop_path_rates, d_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x if self.upsample is None else self.upsample(x))


def decoder_drop_path_rates(drop_path_rate: float, decoder_depths: Sequence[int]) -> list[list[float]]:
    """VM-UNet's decoder rates: linspace(0, rate, blocks) reversed (deepest stage first), split per stage."""
    rates = torch.linspace(0, drop_path_rate, sum(decoder_depths)).flip(0).tolist()
    starts = [sum(decoder_depths[:i]) for i in range(len(decoder_depths))]
    return [rates[start:start + depth] for start, depth in zip(starts, decoder_depths)]


class VMUNetDecoder(DeepSupervisedDecoder):
    """(bottleneck (B, h, w, dims[-1]), encoder skips) -> logits (B, K, 4·2^(n-1)·h, 4·2^(n-1)·w), NCHW.

    Additive skips: stage i >= 1 gets ``x + skips[-i]`` (the stem's skip is unused, as in the original code).
    ``decoder_depths[i]`` is the depth of decoder stage i counted from the bottom. Deep-supervision heads read
    the outputs of stages 1..n-1.
    """

    def __init__(self, dims: Sequence[int], decoder_depths: Sequence[int], drop_path_rate: float, d_state: int,
                 num_classes: int, deep_supervision: bool):
        n = len(dims)
        super().__init__(dims[:-1], num_classes, deep_supervision)
        rates = decoder_drop_path_rates(drop_path_rate, decoder_depths)
        self.layers_up = nn.ModuleList(
            ExpandThenBlocks(dims[n - 1 - i], rates[i], d_state, dims[n - i] if i > 0 else None) for i in range(n))
        self.final_up = PatchExpand(dims[0], dims[0] // 4, scale=PATCH_SIZE)
        self.final_conv = nn.Conv2d(dims[0] // 4, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]):
        x = self.layers_up[0](x)
        features = []
        for i in range(1, len(self.layers_up)):
            x = self.layers_up[i](x + skips[-i])
            features.append(x)
        logits = self.final_conv(self.final_up(x).permute(0, 3, 1, 2))
        return self.assemble(logits, features[::-1])


class VMUNet(VSSUNet):
    """VM-UNet: (B, input_channels, H, W) -> raw logits (B, num_classes, H, W), any H and W (no sigmoid).

    Defaults are the paper's network (27,427,561 parameters with 3 input channels and 1 class).
    With ``deep_supervision`` the output is a list of logits at ``deep_supervision_scales``.
    """

    def __init__(self, input_channels: int, num_classes: int, *, dims: Sequence[int] = (96, 192, 384, 768),
                 depths: Sequence[int] = (2, 2, 2, 2), decoder_depths: Sequence[int] = (2, 2, 2, 1),
                 d_state: int = 16, drop_path_rate: float = 0.2, deep_supervision: bool = False):
        super().__init__(input_channels, num_classes, dims, depths, decoder_depths, len(dims))
        if dims[0] % 4:
            raise ValueError(f"VMUNet's final x4 expand needs dims[0] divisible by 4; got dims={dims}")
        self.encoder = VSSEncoder(input_channels, dims, depths, d_state, drop_path_rate, final_norm=False)
        self.decoder = VMUNetDecoder(dims, decoder_depths, drop_path_rate, d_state, num_classes, deep_supervision)
        self.apply(init_vssm_weights)

"""What both U-Nets share: size-agnostic padding/cropping, their 2D/3D geometry and the deep-supervision switch
nnU-Net drives."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_mamba.nets.encoder import VSSEncoder
from nnunetv2_mamba.nets.geometry import Geometry
from nnunetv2_mamba.nets.ss2d import CONVOLUTIONS
from nnunetv2_mamba.nets.state_dict import check_state_dict_fits

AXIS_NAMES = {2: "H, W", 3: "D, H, W"}


def pad_to_multiple(x: torch.Tensor, multiple: int | Sequence[int]) -> torch.Tensor:
    """Zero-pad (B, C, *S) at the end of each axis so axis i divides by ``multiple[i]`` (an int: every axis);
    no op when they already do."""
    spatial = x.shape[2:]
    multiples = (multiple,) * len(spatial) if isinstance(multiple, int) else tuple(multiple)
    pads = [-size % m for size, m in zip(spatial, multiples)]
    return F.pad(x, [p for pad in reversed(pads) for p in (0, pad)]) if any(pads) else x


def target_shape(spatial: Sequence[int], scale: float | Sequence[float]) -> tuple[int, ...]:
    """Spatial shape nnU-Net's ``DownsampleSegForDSTransform`` gives a target at ``scale`` (one, or one per axis):
    round(size·scale)."""
    scales = (scale,) * len(spatial) if isinstance(scale, (int, float)) else scale
    return tuple(round(size * s) for size, s in zip(spatial, scales))


def crop_to(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(B, C, *s) -> (B, C, *shape), keeping the first corner."""
    shape = tuple(shape)
    return x if tuple(x.shape[2:]) == shape else x[(..., *(slice(0, size) for size in shape))]


def deep_supervision_scales(geometry: Geometry) -> list:
    """Scale of each output (full resolution, then stages 0..n-2): a float when every axis shares it, else one per
    axis, as nnU-Net's ``DownsampleSegForDSTransform`` takes them."""
    scales = [(1.0,) * geometry.spatial_dims] + [tuple(1.0 / s for s in stride)
                                                 for stride in geometry.stage_strides[:-1]]
    return [s[0] if len(set(s)) == 1 else list(s) for s in scales]


def _drop_absent_aux_heads(module, state_dict, prefix, *args) -> None:
    """Checkpoints trained with deep supervision load into a network built without it (nnU-Net's predictor)."""
    if module.aux_heads is None:
        for key in [k for k in state_dict if k.startswith(prefix + "aux_heads.")]:
            del state_dict[key]


class DeepSupervisedDecoder(nn.Module):
    """Base of both decoders: auxiliary 1x1-conv logits heads and the ``deep_supervision`` switch.

    ``aux_dims`` are the widths of the features the heads read, highest resolution first. The heads exist only
    when built with ``deep_supervision=True``; their keys are ``aux_heads.{k}.{weight,bias}``.
    """

    def __init__(self, aux_dims: Sequence[int], num_classes: int, deep_supervision: bool, spatial_dims: int = 2):
        super().__init__()
        self.aux_heads = (nn.ModuleList(CONVOLUTIONS[spatial_dims](dim, num_classes, 1) for dim in aux_dims)
                          if deep_supervision else None)
        self._deep_supervision = bool(deep_supervision)
        self.register_load_state_dict_pre_hook(_drop_absent_aux_heads)

    @property
    def deep_supervision(self) -> bool:
        """True: forward returns [full-resolution logits, *auxiliary logits]; False: the full-resolution logits."""
        return self._deep_supervision

    @deep_supervision.setter
    def deep_supervision(self, enabled: bool) -> None:
        if enabled and self.aux_heads is None:
            raise ValueError("this network was built without deep-supervision heads; "
                             "construct it with deep_supervision=True to switch deep supervision on")
        self._deep_supervision = bool(enabled)

    def assemble(self, logits: torch.Tensor, aux_features: Sequence[torch.Tensor]):
        """logits (B, K, *S) and channel-last features (highest resolution first) -> logits or list of logits."""
        if not self._deep_supervision:
            return logits
        return [logits] + [head(f.movedim(-1, 1)) for head, f in zip(self.aux_heads, aux_features)]


class VSSUNet(nn.Module):
    """Base of both networks: (B, C_in, *S) -> raw logits (B, K, *S) for any image (H, W) or volume (D, H, W).

    The input is zero-padded to a multiple of ``size_divisor`` (per axis; 4·2^(stages-1) with the default
    ``geometry``) and every output cropped back: output k has nnU-Net's target shape for
    ``deep_supervision_scales[k]``. Subclasses set ``encoder``/``decoder``.
    """

    encoder: VSSEncoder
    decoder: DeepSupervisedDecoder

    def __init__(self, input_channels: int, num_classes: int, dims: Sequence[int], depths: Sequence[int],
                 decoder_depths: Sequence[int], expected_decoder_stages: int, geometry: Geometry):
        super().__init__()
        if len(dims) < 2 or len(depths) != len(dims):
            raise ValueError(f"dims and depths need one entry per encoder stage (at least 2); got dims={dims}, "
                             f"depths={depths}")
        if len(decoder_depths) != expected_decoder_stages:
            raise ValueError(f"{type(self).__name__} with {len(dims)} stages needs {expected_decoder_stages} "
                             f"decoder_depths; got {decoder_depths}")
        if input_channels < 1 or num_classes < 1:
            raise ValueError(f"input_channels and num_classes must be >= 1; got {input_channels}, {num_classes}")
        self.input_channels = input_channels
        self.num_classes = num_classes
        self.geometry = geometry
        self.spatial_dims = geometry.spatial_dims
        self.size_divisor = geometry.size_divisor
        self.deep_supervision_scales = deep_supervision_scales(geometry)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """A strict load (nnU-Net's --c, --val, predictor) of another network's weights: one clear error."""
        if strict:
            check_state_dict_fits(self, state_dict)
        return super().load_state_dict(state_dict, strict, assign)

    def forward(self, x: torch.Tensor):
        if x.dim() != 2 + self.spatial_dims or x.shape[1] != self.input_channels:
            raise ValueError(f"expected input of shape (B, {self.input_channels}, {AXIS_NAMES[self.spatial_dims]}); "
                             f"got {tuple(x.shape)}. This network takes {self.input_channels} input channel(s): give "
                             f"each case exactly {self.input_channels} image file(s), as in the training dataset.json "
                             f"'channel_names'.")
        spatial = tuple(x.shape[2:])
        skips, bottom = self.encoder(pad_to_multiple(x, self.size_divisor))
        out = self.decoder(bottom, skips)
        if isinstance(out, list):
            return [crop_to(o, target_shape(spatial, s)) for o, s in zip(out, self.deep_supervision_scales)]
        return crop_to(out, spatial)

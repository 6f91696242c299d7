"""What both U-Nets share: size-agnostic padding/cropping and the deep-supervision switch nnU-Net drives."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_mamba.nets.encoder import PATCH_SIZE, VSSEncoder
from nnunetv2_mamba.nets.state_dict import check_state_dict_fits


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad (B, C, H, W) at the bottom/right so H and W divide by ``multiple``; no op when they already do."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


def target_shape(height: int, width: int, scale: float) -> tuple[int, int]:
    """Spatial shape nnU-Net's ``DownsampleSegForDSTransform`` gives a target at ``scale``: round(size·scale)."""
    return round(height * scale), round(width * scale)


def crop_to(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, *shape), keeping the top-left corner."""
    return x if tuple(x.shape[-2:]) == shape else x[..., :shape[0], :shape[1]]


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

    def __init__(self, aux_dims: Sequence[int], num_classes: int, deep_supervision: bool):
        super().__init__()
        self.aux_heads = (nn.ModuleList(nn.Conv2d(dim, num_classes, 1) for dim in aux_dims)
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
        """logits (B, K, H, W) and channel-last features (highest resolution first) -> logits or list of logits."""
        if not self._deep_supervision:
            return logits
        return [logits] + [head(f.permute(0, 3, 1, 2)) for head, f in zip(self.aux_heads, aux_features)]


class VSSUNet(nn.Module):
    """Base of both networks: (B, C_in, H, W) -> raw logits (B, K, H, W) for any H, W.

    The input is zero-padded to a multiple of ``size_divisor`` (4·2^(stages-1)) and every output cropped back:
    output k has nnU-Net's target shape for ``deep_supervision_scales[k]``. Subclasses set ``encoder``/``decoder``.
    """

    encoder: VSSEncoder
    decoder: DeepSupervisedDecoder

    def __init__(self, input_channels: int, num_classes: int, dims: Sequence[int], depths: Sequence[int],
                 decoder_depths: Sequence[int], expected_decoder_stages: int):
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
        self.size_divisor = PATCH_SIZE * 2 ** (len(dims) - 1)
        self.deep_supervision_scales = [1.0] + [1.0 / (PATCH_SIZE * 2 ** i) for i in range(len(dims) - 1)]

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """A strict load (nnU-Net's --c, --val, predictor) of another network's weights: one clear error."""
        if strict:
            check_state_dict_fits(self, state_dict)
        return super().load_state_dict(state_dict, strict, assign)

    def forward(self, x: torch.Tensor):
        if x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(f"expected input of shape (B, {self.input_channels}, H, W); got {tuple(x.shape)}. This "
                             f"network takes {self.input_channels} input channel(s): give each case exactly "
                             f"{self.input_channels} image file(s), as in the training dataset.json 'channel_names'.")
        height, width = x.shape[-2:]
        skips, bottom = self.encoder(pad_to_multiple(x, self.size_divisor))
        out = self.decoder(bottom, skips)
        if isinstance(out, list):
            return [crop_to(o, target_shape(height, width, s)) for o, s in zip(out, self.deep_supervision_scales)]
        return crop_to(out, (height, width))

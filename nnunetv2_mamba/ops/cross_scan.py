"""SS2D's four scan orders of a feature map and their merge: the torch definitions.

Direction k=0 reads row-major (index h*W + w), k=1 column-major (w*H + h), k=2 and k=3 are k=0 and k=1 reversed.
Both maps are permutation sums, each the other's adjoint, so :data:`IMAGE_PAIR` runs each as the other's backward
(:mod:`.adjoint`). The fused Triton kernels of the same maps are :mod:`.cross_scan_triton`; which of the two a mixer
runs is its scan backend's choice (:class:`~.backends.ScanBackend`). The ``*_channels_last`` pair is the same map on
(B, H, W, C) images and (B, H*W, 4, C) sequences: every copy moves whole rows of C channels, which is what the CPU
scans (cpu and torch) want (see ``SS2D``).
"""
from __future__ import annotations

import torch

from nnunetv2_mamba.ops.adjoint import AdjointPair


def scan_image(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W)."""
    batch, channels, H, W = x.shape
    out = x.new_empty(batch, 4, channels, H * W)
    out[:, 0] = x.flatten(2)
    out[:, 1] = x.transpose(2, 3).flatten(2)
    out[:, 2:4] = out[:, 0:2].flip(-1)
    return out


def merge_image(ys: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(B, 4, C, H*W), (H, W) -> (B, C, H*W) row-major: the sum of the four directions mapped back."""
    H, W = shape
    batch, _, channels, L = ys.shape
    pairs = ys[:, 0:2] + ys[:, 2:4].flip(-1)
    return pairs[:, 0] + pairs[:, 1].view(batch, channels, W, H).transpose(2, 3).reshape(batch, channels, L)


IMAGE_PAIR = AdjointPair(scan_image, merge_image)


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W): row-major, column-major, and both reversed."""
    if x.dim() != 4:
        raise ValueError(f"cross_scan expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    return IMAGE_PAIR.scan(x)


def cross_merge(ys: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(B, 4, C, H*W) -> (B, C, H*W): the adjoint of :func:`cross_scan` (so merge(scan(x)) == 4 x)."""
    if ys.dim() != 4 or ys.shape[1] != 4 or ys.shape[3] != H * W:
        raise ValueError(f"cross_merge expects (B, 4, C, {H}*{W}) for H={H}, W={W}, got shape {tuple(ys.shape)}")
    return IMAGE_PAIR.merge(ys.contiguous(), (H, W))


def cross_scan_channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, H*W, 4, C): :func:`cross_scan`'s four orders, channels last."""
    if x.dim() != 4:
        raise ValueError(f"cross_scan_channels_last expects a (B, H, W, C) tensor, got shape {tuple(x.shape)}")
    batch, H, W, channels = x.shape
    rows = x.reshape(batch, H * W, channels)
    columns = x.transpose(1, 2).reshape(batch, H * W, channels)
    return torch.stack([rows, columns, rows.flip(1), columns.flip(1)], dim=2)


def cross_merge_channels_last(ys: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(B, H*W, 4, C) -> (B, H, W, C): the adjoint of :func:`cross_scan_channels_last`."""
    if ys.dim() != 4 or ys.shape[1] != H * W or ys.shape[2] != 4:
        raise ValueError(f"cross_merge_channels_last expects (B, {H}*{W}, 4, C) for H={H}, W={W}, got shape "
                         f"{tuple(ys.shape)}")
    batch, _, _, channels = ys.shape
    pairs = ys[:, :, 0:2] + ys[:, :, 2:4].flip(1)  # (B, L, 2, C): row-major and column-major orders
    rows, columns = pairs[:, :, 0], pairs[:, :, 1]
    return rows.reshape(batch, H, W, channels) + columns.reshape(batch, W, H, channels).transpose(1, 2)

"""SS2D's four scan orders of a feature map and their merge, as autograd Functions adjoint to each other.

Direction k=0 reads row-major (index h*W + w), k=1 column-major (w*H + h), k=2 and k=3 are k=0 and k=1 reversed.
Both maps are permutation sums, so each one's backward is the other one. On CUDA, unless the torch backend is forced
(``nnUNet_mamba_scan=torch``) or the triton smoke test failed there, the fused Triton kernels of
:mod:`.cross_scan_triton` run instead: they write the four directions by index arithmetic without materialising
flipped or transposed copies. The ``*_channels_last`` pair is the same map on (B, H, W, C) images and (B, H*W, 4, C)
sequences: every copy moves whole rows of C channels, which is what the CPU scans (cpu and torch) want (see
``SS2D``).
"""
from __future__ import annotations

import torch

from nnunetv2_mamba.ops.backends import compiling, fused_cross_scan


def _scan(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W)."""
    batch, channels, H, W = x.shape
    out = x.new_empty(batch, 4, channels, H * W)
    out[:, 0] = x.flatten(2)
    out[:, 1] = x.transpose(2, 3).flatten(2)
    out[:, 2:4] = out[:, 0:2].flip(-1)
    return out


def _merge(ys: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(B, 4, C, H*W) -> (B, C, H*W) row-major: the sum of the four directions mapped back."""
    batch, _, channels, L = ys.shape
    pairs = ys[:, 0:2] + ys[:, 2:4].flip(-1)
    return pairs[:, 0] + pairs[:, 1].view(batch, channels, W, H).transpose(2, 3).reshape(batch, channels, L)


class CrossScan(torch.autograd.Function):
    """(B, C, H, W) -> (B, 4, C, H*W)."""

    @staticmethod
    def forward(ctx, x):
        ctx.spatial = x.shape[2:]
        return _scan(x)

    @staticmethod
    def backward(ctx, grad):
        H, W = ctx.spatial
        return _merge(grad, H, W).view(grad.shape[0], grad.shape[2], H, W)


class CrossMerge(torch.autograd.Function):
    """(B, 4, C, H*W) -> (B, C, H*W)."""

    @staticmethod
    def forward(ctx, ys, H, W):
        ctx.spatial = (H, W)
        return _merge(ys, H, W)

    @staticmethod
    def backward(ctx, grad):
        H, W = ctx.spatial
        return _scan(grad.view(grad.shape[0], grad.shape[1], H, W)), None, None


def _use_triton(t: torch.Tensor) -> bool:
    """True for CUDA tensors where the fused Triton kernels passed the triton smoke test and the pure-torch path is
    not requested (:func:`~.backends.fused_cross_scan`); not while torch.compile traces, whose own kernels fuse
    the permutations."""
    return t.is_cuda and not compiling() and fused_cross_scan(t.device)


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W): row-major, column-major, and both reversed."""
    if x.dim() != 4:
        raise ValueError(f"cross_scan expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    if _use_triton(x):
        from nnunetv2_mamba.ops.cross_scan_triton import cross_scan_triton
        return cross_scan_triton(x)
    return CrossScan.apply(x)


def cross_merge(ys: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(B, 4, C, H*W) -> (B, C, H*W): the adjoint of :func:`cross_scan` (so merge(scan(x)) == 4 x)."""
    if ys.dim() != 4 or ys.shape[1] != 4 or ys.shape[3] != H * W:
        raise ValueError(f"cross_merge expects (B, 4, C, {H}*{W}) for H={H}, W={W}, got shape {tuple(ys.shape)}")
    if _use_triton(ys):
        from nnunetv2_mamba.ops.cross_scan_triton import cross_merge_triton
        return cross_merge_triton(ys, H, W)
    return CrossMerge.apply(ys.contiguous(), H, W)


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

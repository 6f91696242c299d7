"""Fused 4-direction cross scan / cross merge in Triton (VMamba's SS2D unfolding), each the other's backward.

Directions of a (H, W) map flattened to L = H*W positions: k=0 row-major (h*W + w), k=1 column-major (w*H + h),
k=2 the reverse of k=0, k=3 the reverse of k=1. The kernels compute every direction's position from the row-major
one by index arithmetic, so no flipped or transposed copy is ever made; they equal the torch definitions of
:mod:`.cross_scan` bit for bit. Availability follows ``scan_triton``.
"""
from __future__ import annotations

import torch

from nnunetv2_mamba.ops.adjoint import AdjointPair
from nnunetv2_mamba.ops.scan_triton import TRITON_AVAILABLE, launch_guard, require_triton_device, tl, triton

BLOCK_POSITIONS = 1024

if TRITON_AVAILABLE:

    @triton.jit
    def _direction_positions(p, H, W):
        """Row-major positions p -> their positions in directions 1, 2, 3."""
        L = H * W
        column_major = (p % W) * H + p // W
        return column_major, L - 1 - p, L - 1 - column_major

    @triton.jit
    def _block_positions(channels, H, W, BLOCK: tl.constexpr):
        """This program's (batch, channel) row and block of positions: (row, p, mask, p1, p2, p3, offset of the
        row's direction 0 in a (B, 4, C, L) tensor, stride between directions)."""
        batch_channel = tl.program_id(0).to(tl.int64)
        L = H * W
        p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        p1, p2, p3 = _direction_positions(p, H, W)
        batch, channel = batch_channel // channels, batch_channel % channels
        return (batch_channel * L, p, p < L, p1, p2, p3, (batch * 4 * channels + channel) * L, channels * L)

    @triton.jit
    def _cross_scan_kernel(x_ptr, ys_ptr, channels, H, W, BLOCK: tl.constexpr):
        """x (B, C, L) -> ys (B, 4, C, L): reads each row-major position once, writes it to 4 places."""
        row, p, mask, p1, p2, p3, directions, direction_stride = _block_positions(channels, H, W, BLOCK)
        out = ys_ptr + directions
        value = tl.load(x_ptr + row + p, mask=mask)
        tl.store(out + p, value, mask=mask)
        tl.store(out + direction_stride + p1, value, mask=mask)
        tl.store(out + 2 * direction_stride + p2, value, mask=mask)
        tl.store(out + 3 * direction_stride + p3, value, mask=mask)

    @triton.jit
    def _cross_merge_kernel(ys_ptr, y_ptr, channels, H, W, BLOCK: tl.constexpr):
        """ys (B, 4, C, L) -> y (B, C, L): y[p] = (ys0[p] + ys2[p2]) + (ys1[p1] + ys3[p3]), the cross_scan adjoint."""
        row, p, mask, p1, p2, p3, directions, direction_stride = _block_positions(channels, H, W, BLOCK)
        source = ys_ptr + directions
        rows = tl.load(source + p, mask=mask) + tl.load(source + 2 * direction_stride + p2, mask=mask)
        columns = tl.load(source + direction_stride + p1, mask=mask) + tl.load(
            source + 3 * direction_stride + p3, mask=mask)
        tl.store(y_ptr + row + p, rows + columns, mask=mask)


def _launch_cross_scan(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W)."""
    require_triton_device(x)
    if x.dim() != 4:
        raise ValueError(f"cross_scan expects x of shape (B, C, H, W); got {tuple(x.shape)}.")
    B, C, H, W = x.shape
    x = x.contiguous()
    ys = torch.empty(B, 4, C, H * W, device=x.device, dtype=x.dtype)
    with launch_guard(x):
        _cross_scan_kernel[(B * C, triton.cdiv(H * W, BLOCK_POSITIONS))](x, ys, C, H, W, BLOCK=BLOCK_POSITIONS)
    return ys


def _launch_cross_merge(ys: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(B, 4, C, H*W), (H, W) -> (B, C, H*W)."""
    require_triton_device(ys)
    H, W = shape
    B, K, C, L = ys.shape
    if K != 4 or L != H * W:
        raise ValueError(f"cross_merge expects ys of shape (B, 4, C, H*W={H * W}); got {tuple(ys.shape)}.")
    ys = ys.contiguous()
    y = torch.empty(B, C, L, device=ys.device, dtype=ys.dtype)
    with launch_guard(ys):
        _cross_merge_kernel[(B * C, triton.cdiv(L, BLOCK_POSITIONS))](ys, y, C, H, W, BLOCK=BLOCK_POSITIONS)
    return y


FUSED_IMAGE_PAIR = AdjointPair(_launch_cross_scan, _launch_cross_merge)


def cross_scan_triton(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W): row-major, column-major, and both reversed; backward: the cross merge."""
    return FUSED_IMAGE_PAIR.scan(x)


def cross_merge_triton(ys: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(B, 4, C, H*W) -> (B, C, H*W): row-major sum of the 4 directions (the adjoint of cross_scan); backward: the
    cross scan."""
    return FUSED_IMAGE_PAIR.merge(ys, (H, W))

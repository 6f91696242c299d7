"""Fused K-direction 3D cross scan / cross merge in Triton (SS3D's unfolding), each the other's backward.

Directions of a (D, H, W) volume flattened to L = D*H*W positions (see :mod:`.cross_scan_3d`): W fastest (the
row-major position p), H fastest, D fastest (the first K/2 of them), then the same reversed (L - 1 - position).
One program per (batch, channel) row and block of row-major positions: it reads each voxel once and writes it
to its K places (scan), or gathers its K values and sums them in the torch merge's order (merge), so the results
equal the torch definitions bit for bit. Availability follows ``scan_triton``.
"""
from __future__ import annotations

import functools

import torch

from nnunetv2_mamba.ops.adjoint import AdjointPair
from nnunetv2_mamba.ops.cross_scan_3d import check_num_directions
from nnunetv2_mamba.ops.scan_triton import TRITON_AVAILABLE, launch_guard, require_triton_device, tl, triton

BLOCK_POSITIONS = 1024

if TRITON_AVAILABLE:

    @triton.jit
    def _volume_positions(p, D, H, W):
        """Row-major positions p -> their positions in the H-fastest and D-fastest orders."""
        d, h, w = p // (H * W), (p // W) % H, p % W
        return (d * W + w) * H + h, (h * W + w) * D + d

    @triton.jit
    def _block(channels, D, H, W, K: tl.constexpr, BLOCK: tl.constexpr):
        """This program's row and positions: (row offset in (B, C, L), p, mask, H-fastest and D-fastest positions,
        offset of the row's direction 0 in (B, K, C, L), stride between directions, L)."""
        batch_channel = tl.program_id(0).to(tl.int64)
        L = D * H * W
        p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        p_h, p_d = _volume_positions(p, D, H, W)
        batch, channel = batch_channel // channels, batch_channel % channels
        stride = tl.cast(channels, tl.int64) * L  # int64, like every offset below
        return batch_channel * L, p, p < L, p_h, p_d, (batch * K * channels + channel) * L, stride, L

    @triton.jit
    def _cross_scan_3d_kernel(x_ptr, ys_ptr, channels, D, H, W, K: tl.constexpr, BLOCK: tl.constexpr):
        """x (B, C, L) -> ys (B, K, C, L)."""
        row, p, mask, p_h, p_d, directions, stride, L = _block(channels, D, H, W, K, BLOCK)
        out = ys_ptr + directions
        value = tl.load(x_ptr + row + p, mask=mask)
        tl.store(out + p, value, mask=mask)
        tl.store(out + (K // 2) * stride + (L - 1 - p), value, mask=mask)
        if K >= 4:
            tl.store(out + stride + p_h, value, mask=mask)
            tl.store(out + (K // 2 + 1) * stride + (L - 1 - p_h), value, mask=mask)
        if K >= 6:
            tl.store(out + 2 * stride + p_d, value, mask=mask)
            tl.store(out + (K // 2 + 2) * stride + (L - 1 - p_d), value, mask=mask)

    @triton.jit
    def _cross_merge_3d_kernel(ys_ptr, y_ptr, channels, D, H, W, K: tl.constexpr, BLOCK: tl.constexpr):
        """ys (B, K, C, L) -> y (B, C, L): ((W pair) + (H pair)) + (D pair), each pair forward + reversed."""
        row, p, mask, p_h, p_d, directions, stride, L = _block(channels, D, H, W, K, BLOCK)
        source = ys_ptr + directions
        total = tl.load(source + p, mask=mask) + tl.load(source + (K // 2) * stride + (L - 1 - p), mask=mask)
        if K >= 4:
            total += tl.load(source + stride + p_h, mask=mask) + tl.load(
                source + (K // 2 + 1) * stride + (L - 1 - p_h), mask=mask)
        if K >= 6:
            total += tl.load(source + 2 * stride + p_d, mask=mask) + tl.load(
                source + (K // 2 + 2) * stride + (L - 1 - p_d), mask=mask)
        tl.store(y_ptr + row + p, total, mask=mask)


def _launch_cross_scan(x: torch.Tensor, num_directions: int) -> torch.Tensor:
    """(B, C, D, H, W) -> (B, K, C, D*H*W)."""
    require_triton_device(x)
    if x.dim() != 5:
        raise ValueError(f"cross_scan_3d expects x of shape (B, C, D, H, W); got {tuple(x.shape)}.")
    B, C, D, H, W = x.shape
    x = x.contiguous()
    ys = torch.empty(B, num_directions, C, D * H * W, device=x.device, dtype=x.dtype)
    grid = (B * C, triton.cdiv(D * H * W, BLOCK_POSITIONS))
    with launch_guard(x):
        _cross_scan_3d_kernel[grid](x, ys, C, D, H, W, K=num_directions, BLOCK=BLOCK_POSITIONS)
    return ys


def _launch_cross_merge(ys: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, K, C, D*H*W), (D, H, W) -> (B, C, D*H*W)."""
    require_triton_device(ys)
    B, K, C, L = ys.shape
    check_num_directions(K)
    D, H, W = shape
    if L != D * H * W:
        raise ValueError(f"cross_merge_3d expects ys of shape (B, K, C, D*H*W={D * H * W}); got {tuple(ys.shape)}.")
    ys = ys.contiguous()
    y = torch.empty(B, C, L, device=ys.device, dtype=ys.dtype)
    with launch_guard(ys):
        _cross_merge_3d_kernel[(B * C, triton.cdiv(L, BLOCK_POSITIONS))](ys, y, C, D, H, W, K=K,
                                                                          BLOCK=BLOCK_POSITIONS)
    return y


@functools.cache
def fused_volume_pair(num_directions: int) -> AdjointPair:
    """The fused K-direction scan of a volume and its merge, each the other's backward."""
    return AdjointPair(functools.partial(_launch_cross_scan, num_directions=check_num_directions(num_directions)),
                       _launch_cross_merge)


def cross_scan_3d_triton(x: torch.Tensor, num_directions: int = 6) -> torch.Tensor:
    """(B, C, D, H, W) -> (B, K, C, D*H*W): the K orders of ``cross_scan_3d.scan_orders``."""
    return fused_volume_pair(num_directions).scan(x)


def cross_merge_3d_triton(ys: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, K, C, D*H*W) -> (B, C, D*H*W): row-major sum of the K directions (the adjoint of the cross scan)."""
    return fused_volume_pair(ys.shape[1]).merge(ys, shape)

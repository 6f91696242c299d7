"""Slow, obviously-correct 3D cross scan / merge: one voxel at a time, from the index formula of each direction."""
from __future__ import annotations

import torch


def volume_direction_index(k: int, num_directions: int, d: int, h: int, w: int, D: int, H: int, W: int) -> int:
    """Position of voxel (d, h, w) in direction k of K: W fastest, H fastest, D fastest (the first K/2 of them),
    then the same orders reversed."""
    half = num_directions // 2
    forward = [(d * H + h) * W + w, (d * W + w) * H + h, (h * W + w) * D + d][k % half]
    return forward if k < half else D * H * W - 1 - forward


def cross_scan_3d_reference(x: torch.Tensor, num_directions: int = 6) -> torch.Tensor:
    """(B, C, D, H, W) -> (B, K, C, D*H*W)."""
    batch, channels, D, H, W = x.shape
    out = x.new_zeros(batch, num_directions, channels, D * H * W)
    for k in range(num_directions):
        for d in range(D):
            for h in range(H):
                for w in range(W):
                    out[:, k, :, volume_direction_index(k, num_directions, d, h, w, D, H, W)] = x[:, :, d, h, w]
    return out


def cross_merge_3d_reference(ys: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, K, C, D*H*W) -> (B, C, D*H*W) row-major: voxel (d, h, w) sums its value from every direction."""
    D, H, W = shape
    num_directions = ys.shape[1]
    out = ys.new_zeros(ys.shape[0], ys.shape[2], D * H * W)
    for k in range(num_directions):
        for d in range(D):
            for h in range(H):
                for w in range(W):
                    out[:, :, (d * H + h) * W + w] += ys[:, k, :, volume_direction_index(k, num_directions, d, h,
                                                                                         w, D, H, W)]
    return out

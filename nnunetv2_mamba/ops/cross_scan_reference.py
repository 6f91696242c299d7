"""Slow, obviously-correct cross scan / merge: one pixel at a time, from the index formula of each direction."""
from __future__ import annotations

import torch


def direction_index(k: int, h: int, w: int, H: int, W: int) -> int:
    """Position of pixel (h, w) in scan direction k (0 row-major, 1 column-major, 2 and 3 their reverses)."""
    forward = h * W + w if k % 2 == 0 else w * H + h
    return forward if k < 2 else H * W - 1 - forward


def cross_scan_reference(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W)."""
    batch, channels, H, W = x.shape
    out = x.new_zeros(batch, 4, channels, H * W)
    for k in range(4):
        for h in range(H):
            for w in range(W):
                out[:, k, :, direction_index(k, h, w, H, W)] = x[:, :, h, w]
    return out


def cross_merge_reference(ys: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(B, 4, C, H*W) -> (B, C, H*W) row-major: pixel (h, w) sums its value from every direction."""
    out = ys.new_zeros(ys.shape[0], ys.shape[2], H * W)
    for k in range(4):
        for h in range(H):
            for w in range(W):
                out[:, :, h * W + w] += ys[:, k, :, direction_index(k, h, w, H, W)]
    return out

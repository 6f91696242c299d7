"""SS3D's scan orders of a volume and their merge, as autograd Functions adjoint to each other (docs/three_d.md).

A (D, H, W) volume of L = D*H*W voxels is read in K in {2, 4, 6} orders: the first K/2 of "W fastest" (row-major,
index (d*H + h)*W + w), "H fastest" ((d*W + w)*H + h) and "D fastest" ((h*W + w)*D + d), then the same K/2 orders
reversed. K = 6 is every axis-major order both ways; K = 4 is SS2D's four directions slice by slice with the slices
in order (2D direction k is 3D direction k); K = 2 is one flattened sequence both ways. Both maps are permutation
sums, each the other's adjoint, so :func:`volume_pair` runs each as the other's backward (:mod:`.adjoint`). These are
the torch definitions; the fused Triton kernels of the same maps are :mod:`.cross_scan_3d_triton`, and which of the
two a mixer runs is its scan backend's choice (:class:`~.backends.ScanBackend`). The ``*_channels_last`` pair is the
same map on (B, D, H, W, C) volumes and (B, L, K, C) sequences, for the CPU scans (cpu and torch).
"""
from __future__ import annotations

import functools
import math

import torch

from nnunetv2_mamba.ops.adjoint import AdjointPair

FAST_AXES = (2, 1, 0)  # W, H, D of a (D, H, W) volume: the fastest-varying axis of directions 0, 1, 2
DIRECTION_COUNTS = (2, 4, 6)


def check_num_directions(num_directions: int) -> int:
    """``num_directions`` if it is 2, 4 or 6; one ValueError otherwise."""
    if num_directions not in DIRECTION_COUNTS:
        raise ValueError(f"a volume is scanned in 2, 4 or 6 directions (K/2 axis-major orders, each forward and "
                         f"reversed); got num_directions={num_directions!r}")
    return num_directions


def scan_orders(num_directions: int) -> tuple[tuple[int, bool], ...]:
    """(fastest axis of (D, H, W), reversed) of each of the K directions, in direction order."""
    axes = FAST_AXES[:check_num_directions(num_directions) // 2]
    return tuple((axis, False) for axis in axes) + tuple((axis, True) for axis in axes)


def slow_to_fast(fast_axis: int) -> tuple[int, int, int]:
    """The axes of (D, H, W) from slowest to fastest varying when ``fast_axis`` is fastest."""
    return tuple(a for a in range(3) if a != fast_axis) + (fast_axis,)


def _inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(order.index(axis) for axis in range(len(order)))


def scan_volume(x: torch.Tensor, num_directions: int) -> torch.Tensor:
    """(B, C, D, H, W) -> (B, K, C, L)."""
    batch, channels, *shape = x.shape
    half, length = num_directions // 2, math.prod(shape)
    out = x.new_empty(batch, num_directions, channels, length)
    for k, axis in enumerate(FAST_AXES[:half]):
        out[:, k] = x.permute(0, 1, *(2 + a for a in slow_to_fast(axis))).reshape(batch, channels, length)
    out[:, half:] = out[:, :half].flip(-1)
    return out


def merge_volume(ys: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, K, C, L) -> (B, C, L) row-major: each axis order's forward + reversed pair mapped back, summed in order."""
    batch, num_directions, channels, length = ys.shape
    half = num_directions // 2
    pairs = ys[:, :half] + ys[:, half:].flip(-1)
    total = None
    for k, axis in enumerate(FAST_AXES[:half]):
        order = slow_to_fast(axis)
        grid = pairs[:, k].reshape(batch, channels, *(shape[a] for a in order))
        back = grid.permute(0, 1, *(2 + a for a in _inverse(order)))
        total = back if total is None else total + back
    return total.reshape(batch, channels, length)


@functools.cache
def volume_pair(num_directions: int) -> AdjointPair:
    """The K-direction scan of a volume and its merge, each the other's backward."""
    return AdjointPair(functools.partial(scan_volume, num_directions=check_num_directions(num_directions)),
                       merge_volume)


def _check_sequences(ys: torch.Tensor, shape, directions_axis: int, name: str, layout: str) -> None:
    length_axis = 3 if directions_axis == 1 else 1
    if (ys.dim() != 4 or len(shape) != 3 or ys.shape[length_axis] != math.prod(shape)
            or ys.shape[directions_axis] not in DIRECTION_COUNTS):
        raise ValueError(f"{name} expects {layout} with K in {DIRECTION_COUNTS} and L = D*H*W for shape "
                         f"{tuple(shape)}, got shape {tuple(ys.shape)}")


def cross_scan_3d(x: torch.Tensor, num_directions: int = 6) -> torch.Tensor:
    """(B, C, D, H, W) -> (B, K, C, D*H*W): the K scan orders of :func:`scan_orders`."""
    check_num_directions(num_directions)
    if x.dim() != 5:
        raise ValueError(f"cross_scan_3d expects a (B, C, D, H, W) tensor, got shape {tuple(x.shape)}")
    return volume_pair(num_directions).scan(x)


def cross_merge_3d(ys: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, K, C, D*H*W) -> (B, C, D*H*W): the adjoint of :func:`cross_scan_3d` (merge(scan(x)) == K x)."""
    _check_sequences(ys, shape, 1, "cross_merge_3d", "(B, K, C, L)")
    return volume_pair(ys.shape[1]).merge(ys.contiguous(), shape)


def cross_scan_3d_channels_last(x: torch.Tensor, num_directions: int = 6) -> torch.Tensor:
    """(B, D, H, W, C) -> (B, L, K, C): :func:`cross_scan_3d`'s orders, channels last."""
    check_num_directions(num_directions)
    if x.dim() != 5:
        raise ValueError(f"cross_scan_3d_channels_last expects a (B, D, H, W, C) tensor, got shape "
                         f"{tuple(x.shape)}")
    batch, *shape, channels = x.shape
    length = math.prod(shape)
    sequences = [x.permute(0, *(1 + a for a in slow_to_fast(axis)), 4).reshape(batch, length, channels)
                 for axis in FAST_AXES[:num_directions // 2]]
    return torch.stack(sequences + [s.flip(1) for s in sequences], dim=2)


def cross_merge_3d_channels_last(ys: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, L, K, C) -> (B, D, H, W, C): the adjoint of :func:`cross_scan_3d_channels_last`."""
    _check_sequences(ys, shape, 2, "cross_merge_3d_channels_last", "(B, L, K, C)")
    batch, _, num_directions, channels = ys.shape
    half = num_directions // 2
    pairs = ys[:, :, :half] + ys[:, :, half:].flip(1)  # (B, L, K/2, C)
    total = None
    for k, axis in enumerate(FAST_AXES[:half]):
        order = slow_to_fast(axis)
        grid = pairs[:, :, k].reshape(batch, *(shape[a] for a in order), channels)
        back = grid.permute(0, *(1 + a for a in _inverse(order)), 4)
        total = back if total is None else total + back
    return total

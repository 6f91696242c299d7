"""The scan directions of a grid as one object: what an SS2D/SS3D mixer plugs in (docs/three_d.md, "SS3D").

A :class:`ScanDirections` holds the K-direction cross scan of a grid of ``spatial_dims`` axes and its adjoint merge
in both sequence layouts the scan backends use:

- channels first (mamba-ssm's kernel, Triton): scan (B, C, *S) -> (B, K, C, L); merge (B, K, C, L), S -> (B, C, L)
- channels last (the CPU scans): scan (B, *S, C) -> (B, L, K, C); merge (B, L, K, C), S -> (B, *S, C)

with L the number of grid points and S the grid's shape. The channels-first pair is also there as the fused Triton
kernels (:mod:`.cross_scan_triton`, :mod:`.cross_scan_3d_triton`), loaded (and triton imported) only when a scan
backend that uses them asks (:meth:`~.backends.ScanBackend.crossing`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from nnunetv2_mamba.ops.adjoint import AdjointPair
from nnunetv2_mamba.ops.cross_scan import cross_merge, cross_merge_channels_last, cross_scan, cross_scan_channels_last
from nnunetv2_mamba.ops.cross_scan_3d import (check_num_directions, cross_merge_3d, cross_merge_3d_channels_last,
                                              cross_scan_3d, cross_scan_3d_channels_last)

Merge = Callable[[torch.Tensor, Sequence[int]], torch.Tensor]


@dataclass(frozen=True)
class ScanDirections:
    """K scan orders of a grid and their merge, in both layouts (shapes in the module docstring)."""

    spatial_dims: int
    num_directions: int
    scan_channels_first: Callable[[torch.Tensor], torch.Tensor]
    merge_channels_first: Merge
    scan_channels_last: Callable[[torch.Tensor], torch.Tensor]
    merge_channels_last: Merge
    #: the fused Triton channels-first pair (imports triton: call only where a backend chose it)
    fused_channels_first: Callable[[], AdjointPair]


def _merge_image(ys: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    return cross_merge(ys, *shape)


def _merge_image_channels_last(ys: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    return cross_merge_channels_last(ys, *shape)


@functools.cache
def _fused_image() -> AdjointPair:
    from nnunetv2_mamba.ops.cross_scan_triton import FUSED_IMAGE_PAIR
    return FUSED_IMAGE_PAIR


def _fused_volume(num_directions: int) -> AdjointPair:
    from nnunetv2_mamba.ops.cross_scan_3d_triton import fused_volume_pair
    return fused_volume_pair(num_directions)


IMAGE_DIRECTIONS = ScanDirections(
    spatial_dims=2, num_directions=4, scan_channels_first=cross_scan, merge_channels_first=_merge_image,
    scan_channels_last=cross_scan_channels_last, merge_channels_last=_merge_image_channels_last,
    fused_channels_first=_fused_image)


@functools.cache
def volume_directions(num_directions: int = 6) -> ScanDirections:
    """SS3D's K in {2, 4, 6} directions of a (D, H, W) volume (``cross_scan_3d.scan_orders``)."""
    check_num_directions(num_directions)
    return ScanDirections(
        spatial_dims=3, num_directions=num_directions,
        scan_channels_first=functools.partial(cross_scan_3d, num_directions=num_directions),
        merge_channels_first=cross_merge_3d,
        scan_channels_last=functools.partial(cross_scan_3d_channels_last, num_directions=num_directions),
        merge_channels_last=cross_merge_3d_channels_last,
        fused_channels_first=functools.partial(_fused_volume, num_directions))

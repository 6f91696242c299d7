"""What a selective-scan mixer does between its depthwise convolution and its out-norm (docs/architecture.md,
"Scan controls"): the network kwarg ``scan``.

- ``"cross"``: the paper networks' cross scan, selective scan of each direction and merge (SS2D's 4 directions,
  SS3D's K);
- ``"one_way"``: the selective scan along one direction only, row-major forward (the cross scan's direction 0),
  with that one direction's parameters: VMamba's ablation of the cross scan;
- ``"none"``: no scan at all (identity), and none of the scan's own parameters (``x_proj_weight``,
  ``dt_projs_*``, ``A_logs``, ``Ds``): the control that shows what the state-space model contributes.
"""
from __future__ import annotations

import functools
from typing import Sequence

import torch

from nnunetv2_mamba.ops import ScanDirections

CROSS_SCAN, ONE_WAY, NO_SCAN = "cross", "one_way", "none"
SCANS = (CROSS_SCAN, ONE_WAY, NO_SCAN)


def check_scan(scan: str) -> str:
    """``scan`` if it is one of ``SCANS``; one ValueError otherwise."""
    if scan not in SCANS:
        raise ValueError(f"scan={scan!r}: choose 'cross' (the paper's cross scan), 'one_way' (one row-major "
                         f"direction) or 'none' (no selective scan)")
    return scan


def _flatten_channels_first(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *S) -> (B, 1, C, L)."""
    return x.flatten(2).unsqueeze(1)


def _merge_channels_first(ys: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(B, 1, C, L), S -> (B, C, L)."""
    return ys.squeeze(1)


def _flatten_channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, *S, C) -> (B, L, 1, C)."""
    return x.reshape(x.shape[0], -1, 1, x.shape[-1])


def _merge_channels_last(ys: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(B, L, 1, C), S -> (B, *S, C)."""
    return ys.reshape(ys.shape[0], *shape, ys.shape[-1])


@functools.cache
def one_way_directions(spatial_dims: int) -> ScanDirections:
    """The single row-major forward direction of a grid of ``spatial_dims`` axes (K = 1): the cross scans'
    direction 0 in 2D and 3D, as a reshape."""
    return ScanDirections(spatial_dims=spatial_dims, num_directions=1,
                          scan_channels_first=_flatten_channels_first, merge_channels_first=_merge_channels_first,
                          scan_channels_last=_flatten_channels_last, merge_channels_last=_merge_channels_last)

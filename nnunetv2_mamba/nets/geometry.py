"""How a VSS U-Net tiles its input, per axis: the stem's patch size and each patch merging's factor
(docs/three_d.md, "Geometry").

Stage i's features have stride ``stage_strides[i]`` = patch_size * merge_factors[0] * ... * merge_factors[i-1]
(per axis); the input is padded to a multiple of the last one, ``size_divisor``. A factor of 1 keeps an axis
unreduced (e.g. the slice axis of a 5 mm-slice CT). The default is VMamba's tiling, patch 4 and merges of 2 on
every axis; :func:`factors_for_spacing` derives anisotropic factors from a voxel spacing the way nnU-Net decides
where to pool.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

from torch import nn

from nnunetv2_mamba.nets.scan_variants import CROSS_SCAN, check_scan
from nnunetv2_mamba.nets.ss2d import SS2D
from nnunetv2_mamba.nets.ss3d import DEFAULT_DIRECTIONS, SS3D

DEFAULT_PATCH_SIZE = 4
DEFAULT_MERGE_FACTOR = 2
STEM_STEPS = 2  # the stem's patch of 4 = two halvings


@dataclass(frozen=True)
class Geometry:
    """Per-axis tiling of a VSS U-Net with ``len(merge_factors) + 1`` stages, and its blocks' scan directions
    (``num_directions`` of the cross scan, which ``scan`` keeps or replaces: nets/scan_variants.py)."""

    patch_size: tuple[int, ...]
    merge_factors: tuple[tuple[int, ...], ...]
    num_directions: int
    scan: str = CROSS_SCAN

    @property
    def spatial_dims(self) -> int:
        return len(self.patch_size)

    @property
    def stage_strides(self) -> list[tuple[int, ...]]:
        """Per stage, the input voxels per feature along each axis."""
        strides = [self.patch_size]
        for factors in self.merge_factors:
            strides.append(tuple(s * f for s, f in zip(strides[-1], factors)))
        return strides

    @property
    def size_divisor(self) -> tuple[int, ...]:
        """Each input axis is padded to a multiple of this."""
        return self.stage_strides[-1]

    def mixer(self) -> Callable[..., nn.Module]:
        """The blocks' mixer, called as ``mixer(dim, d_state=...)``: SS2D, or SS3D with K directions."""
        if self.spatial_dims == 2:
            return functools.partial(SS2D, scan=self.scan)
        return functools.partial(SS3D, num_directions=self.num_directions, scan=self.scan)


def _per_axis(value, spatial_dims: int, name: str) -> tuple[int, ...]:
    values = (value,) * spatial_dims if isinstance(value, int) else tuple(value)
    if len(values) != spatial_dims or not all(isinstance(v, int) and v >= 1 for v in values):
        raise ValueError(f"{name} must be a positive integer or {spatial_dims} of them (one per axis); got {value!r}")
    return values


def make_geometry(spatial_dims: int, num_stages: int, patch_size: int | Sequence[int] = DEFAULT_PATCH_SIZE,
                  merge_factors: Sequence[int | Sequence[int]] | None = None,
                  num_directions: int | None = None, scan: str = CROSS_SCAN) -> Geometry:
    """Validated geometry; ``merge_factors`` defaults to 2 on every axis, ``num_directions`` to 4 (2D) / 6 (3D)."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 (images) or 3 (volumes); got {spatial_dims!r}")
    if merge_factors is None:
        merge_factors = [DEFAULT_MERGE_FACTOR] * (num_stages - 1)
    if len(merge_factors) != num_stages - 1:
        raise ValueError(f"merge_factors needs one entry per patch merging ({num_stages - 1} for {num_stages} "
                         f"stages); got {merge_factors!r}")
    if spatial_dims == 2 and num_directions not in (None, 4):
        raise ValueError(f"SS2D scans an image in 4 directions; num_directions={num_directions!r} is for volumes "
                         f"(spatial_dims=3)")
    default_directions = 4 if spatial_dims == 2 else DEFAULT_DIRECTIONS
    return Geometry(_per_axis(patch_size, spatial_dims, "patch_size"),
                    tuple(_per_axis(f, spatial_dims, "each of merge_factors") for f in merge_factors),
                    default_directions if num_directions is None else num_directions, check_scan(scan))


def factors_for_spacing(spacing: Sequence[float], patch_size: Sequence[int],
                        num_stages: int) -> tuple[list[int], list[list[int]]]:
    """(patch_size, merge_factors) network kwargs for voxels of ``spacing`` and a patch of ``patch_size``.

    The network halves the resolution ``2 + num_stages - 1`` times (twice in the stem, once per merging). At each
    halving, as nnU-Net's ``get_pool_and_conv_props`` decides where to pool, an axis is halved when it still has at
    least 2 features and its current spacing is less than twice the finest current spacing among such axes;
    other axes keep factor 1. Isotropic spacing and a large enough patch give patch 4 and merges of 2 everywhere.
    """
    spacing, size = [float(s) for s in spacing], [float(s) for s in patch_size]
    steps = []
    for _ in range(STEM_STEPS + num_stages - 1):
        reducible = [i for i in range(len(size)) if size[i] >= 2]
        finest = min((spacing[i] for i in reducible), default=math.inf)
        factors = [2 if i in reducible and spacing[i] / finest < 2 else 1 for i in range(len(size))]
        spacing = [s * f for s, f in zip(spacing, factors)]
        size = [s / f for s, f in zip(size, factors)]
        steps.append(factors)
    stem = [math.prod(axis) for axis in zip(*steps[:STEM_STEPS])]
    return stem, steps[STEM_STEPS:]

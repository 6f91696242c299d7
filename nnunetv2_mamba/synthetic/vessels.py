"""Vessels: angiography-like maximum-intensity projections of two kinds of thin branching vessel trees.

Arteries and veins each grow as a few trees from the rim of a circular field of view inwards: a centreline that
drifts and wiggles (a random walk of its direction) and splits into two thinner branches (radius x 0.7-0.9, at
+-0.3-0.8 rad) every 12-35 px, down to the thinnest radius. Radii stay in [0.6, 1.9] px, so every vessel is
1-4 px wide at any image size; veins start thicker than arteries. A pixel belongs to a vessel when its centre lies
within the local radius of the centreline; arteries win where the two cross (they are the brighter in the
projection). Image: textured tissue with faint blobs, each vessel's partial-volume profile times its contrast
(arteries brighter than veins by a random factor, so that a thin artery can look like a thick vein: the trees'
connectivity tells them apart), the maximum of the two, then bias field, a light blur and Rician noise. Spacing
0.3-0.45 mm in plane, slab thickness 1-3 mm.
"""
from __future__ import annotations

import numpy as np
from scipy import spatial

from nnunetv2_mamba.synthetic.fields import mr_acquisition, pixel_grid, sample_spacing, smooth_field
from nnunetv2_mamba.synthetic.slices import DatasetKind, SyntheticSlice

BACKGROUND, ARTERY, VEIN = 0, 1, 2
LABELS = {"background": BACKGROUND, "artery": ARTERY, "vein": VEIN}
MIN_RADIUS_PX, MAX_RADIUS_PX = 0.6, 1.9
STEP_PX = 0.5


def _grow_tree(rng: np.random.Generator, start: np.ndarray, angle: float, radius: float,
               inside) -> tuple[list[np.ndarray], list[float]]:
    """Centreline points (row, col) and their radii of one tree grown from ``start`` in direction ``angle``
    until every branch leaves ``inside(point)`` or reaches the thinnest radius."""
    points, radii = [], []
    branches = [(np.asarray(start, float), angle, radius)]
    while branches:
        position, angle, radius = branches.pop()
        drift = rng.normal(0, 0.02)
        for _ in range(int(rng.uniform(12, 35) / STEP_PX)):
            angle += drift * STEP_PX + rng.normal(0, 0.08) * np.sqrt(STEP_PX)
            position = position + STEP_PX * np.array([np.sin(angle), np.cos(angle)])
            if not inside(position):
                break
            points.append(position)
            radii.append(radius)
        else:
            if radius * 0.8 >= MIN_RADIUS_PX:
                for side in (-1, 1):
                    branches.append((position, angle + side * rng.uniform(0.3, 0.8),
                                     max(MIN_RADIUS_PX, radius * rng.uniform(0.7, 0.9))))
    return points, radii


def _trees(rng: np.random.Generator, count: int, radius_range, center, fov_radius, inside):
    """Points (N, 2) and radii (N,) of ``count`` trees rooted on the field-of-view rim, pointing inwards."""
    points, radii = [], []
    for rim_angle in rng.uniform(0, 2 * np.pi, count):
        start = center + (fov_radius - 1.0) * np.array([np.sin(rim_angle), np.cos(rim_angle)])
        inward = rim_angle + np.pi + rng.uniform(-0.5, 0.5)
        tree_points, tree_radii = _grow_tree(rng, start, inward, rng.uniform(*radius_range), inside)
        points += tree_points
        radii += tree_radii
    return np.array(points, float).reshape(-1, 2), np.array(radii, float)


def _render(points: np.ndarray, radii: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mask (pixel centre within the nearest centreline point's radius) and partial-volume coverage in [0, 1] of
    a vessel tree on ``grid`` (H, W, 2) pixel centres."""
    if len(points) == 0:
        return np.zeros(grid.shape[:2], bool), np.zeros(grid.shape[:2])
    distance, nearest = spatial.cKDTree(points).query(grid.reshape(-1, 2), distance_upper_bound=MAX_RADIUS_PX + 1)
    radius = np.append(radii, 0.0)[nearest]  # index len(points) = nothing within reach
    mask = (distance <= radius).reshape(grid.shape[:2])
    coverage = np.clip(radius + 0.5 - distance, 0.0, 1.0).reshape(grid.shape[:2])
    return mask, coverage


def make_slice(rng: np.random.Generator, image_size: tuple[int, int] = (128, 128)) -> SyntheticSlice:
    """One random projection of ``image_size`` (H, W) pixels; one channel, labels artery 1, vein 2."""
    shape = tuple(image_size)
    px = max(shape) / 128.0
    rows, cols = pixel_grid(shape)
    center = np.array(shape, float) / 2 + rng.uniform(-0.04, 0.04, 2) * np.array(shape)
    fov_radius = min(shape) * rng.uniform(0.44, 0.5)
    fov = np.hypot(rows - center[0], cols - center[1]) <= fov_radius

    def inside(point):
        return np.hypot(*(point - center)) <= fov_radius - 1.0

    trees_per_class = max(1, int(round(rng.uniform(2, 3.5) * px)))
    grid = np.stack([rows, cols], -1)
    artery, artery_coverage = _render(*_trees(rng, trees_per_class, (1.0, 1.6), center, fov_radius, inside), grid)
    vein, vein_coverage = _render(*_trees(rng, trees_per_class, (1.4, MAX_RADIUS_PX), center, fov_radius, inside),
                                  grid)
    labels = np.zeros(shape, np.uint8)
    labels[vein & fov] = VEIN
    labels[artery & fov] = ARTERY

    tissue = (rng.uniform(0.2, 0.35) + 0.05 * smooth_field(rng, shape, 8 * px)
              + 0.03 * smooth_field(rng, shape, 1.5) + 0.08 * np.maximum(smooth_field(rng, shape, 5 * px), 0))
    artery_contrast = rng.uniform(0.35, 0.7)
    vein_contrast = artery_contrast * rng.uniform(0.45, 0.75)
    inflow = 1.0 + 0.15 * smooth_field(rng, shape, 10 * px)
    vessels = inflow * np.maximum(artery_contrast * artery_coverage, vein_contrast * vein_coverage)
    image = np.where(fov, tissue + vessels, 0.0)
    image = mr_acquisition(rng, image, 1.0, bias_strength=(0.1, 0.3), blur_px=(0.3, 0.7), noise=(0.03, 0.07),
                           bias_sigma_px=30 * px)
    spacing = sample_spacing(rng, 0.3, 0.45)
    return SyntheticSlice(image[None], labels, spacing, float(rng.uniform(1.0, 3.0)))


KIND = DatasetKind(
    name="vessels", summary="angiography-like thin branching vessels (1-4 px wide), labels artery/vein",
    dataset_name="VesselPhantom", default_id=901, case_prefix="vessels_", channel_names={"0": "MRA"},
    labels=LABELS,
    description="Synthetic angiography-like projections of thin branching artery and vein trees (nnunetv2_mamba).",
    make_slice=make_slice)

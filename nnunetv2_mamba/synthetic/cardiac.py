"""Cardiac: one synthetic short-axis cardiac MRI slice with ACDC-like labels (the project's first phantom).

Anatomy (in mm, then rasterised on the pixel grid): a left-ventricle (LV) cavity whose border is a rotated ellipse
with low-order radial harmonics, a myocardium (MYO) ring of varying thickness around it, and a crescent right
ventricle (RV) cavity beside it (an ellipse placed at a random angle next to the heart minus the dilated
epicardium). Image: per-tissue intensities, a smooth textured body background with dark lungs, a smooth
multiplicative bias field, a Gaussian blur (partial volume) and Rician noise. Spacing 1.3-1.75 mm in plane,
slice thickness 5-10 mm.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunetv2_mamba.synthetic.fields import (mr_acquisition, pixel_grid, random_harmonics, sample_spacing,
                                             smooth_field, wobbly_ellipse)
from nnunetv2_mamba.synthetic.slices import DatasetKind, SyntheticSlice

BACKGROUND, RV, MYO, LV = 0, 1, 2, 3
LABELS = {"background": BACKGROUND, "RV": RV, "MYO": MYO, "LV": LV}


def _labels(rng: np.random.Generator, rows_mm: np.ndarray, cols_mm: np.ndarray, extent_mm: np.ndarray) -> np.ndarray:
    """ACDC-like label map (H, W) for one random heart."""
    center = extent_mm / 2 + rng.uniform(-0.12, 0.12, 2) * extent_mm
    scale = extent_mm.min() / 160.0  # hearts shrink with the field of view so that they always fit
    lv_radius = rng.uniform(10.0, 17.0) * scale
    aspect = rng.uniform(0.85, 1.15)
    angle = rng.uniform(0, np.pi)
    wobble = random_harmonics(rng, (2, 3), 0.06)
    lv = wobbly_ellipse(rows_mm, cols_mm, center, (lv_radius * aspect, lv_radius / aspect), angle, wobble)
    wall = rng.uniform(5.0, 9.0) * scale
    wall_wobble = {k: (a * 0.5, p) for k, (a, p) in wobble.items()}
    epicardium = wobbly_ellipse(rows_mm, cols_mm, center,
                                (lv_radius * aspect + wall, lv_radius / aspect + wall), angle, wall_wobble)
    rv_angle = rng.uniform(0, 2 * np.pi)
    rv_offset = (lv_radius + wall) * rng.uniform(0.75, 1.05)
    rv_center = center + rv_offset * np.array([np.sin(rv_angle), np.cos(rv_angle)])
    rv_long = (lv_radius + wall) * rng.uniform(1.15, 1.5)
    rv_short = (lv_radius + wall) * rng.uniform(0.6, 0.85)
    rv_ellipse = wobbly_ellipse(rows_mm, cols_mm, rv_center, (rv_short, rv_long), rv_angle,
                                random_harmonics(rng, (2,), 0.05))
    septum_px = max(1, int(round(2.5 * scale / max(rows_mm[1, 0] - rows_mm[0, 0], 1e-6))))
    rv = rv_ellipse & ~ndimage.binary_dilation(epicardium, iterations=septum_px)
    labels = np.zeros(rows_mm.shape, np.uint8)
    labels[rv] = RV
    labels[epicardium] = MYO
    labels[lv] = LV
    return labels


def _image(rng: np.random.Generator, labels: np.ndarray, rows_mm, cols_mm, extent_mm) -> np.ndarray:
    """MR-looking float32 image (H, W) in roughly [0, 1000] for ``labels``."""
    shape = labels.shape
    px = max(shape) / 128.0
    body_center = extent_mm / 2 + rng.uniform(-0.05, 0.05, 2) * extent_mm
    body = wobbly_ellipse(rows_mm, cols_mm, body_center, extent_mm * rng.uniform(0.40, 0.48, 2),
                          rng.uniform(-0.3, 0.3), {3: (0.03, rng.uniform(0, 6.3))})
    tissue = rng.uniform(0.25, 0.45) + 0.08 * smooth_field(rng, shape, 4 * px)
    lungs = smooth_field(rng, shape, 10 * px) > rng.uniform(0.6, 1.0)
    image = np.where(body, tissue, 0.0)
    image[body & lungs] = rng.uniform(0.03, 0.08)
    blood = rng.uniform(0.75, 1.0)
    image[labels == LV] = blood + 0.04 * smooth_field(rng, shape, 2 * px)[labels == LV]
    image[labels == RV] = blood * rng.uniform(0.85, 1.05) + 0.04 * smooth_field(rng, shape, 2 * px)[labels == RV]
    image[labels == MYO] = rng.uniform(0.18, 0.32)
    return mr_acquisition(rng, image, px)


def make_slice(rng: np.random.Generator, image_size: tuple[int, int] = (128, 128)) -> SyntheticSlice:
    """One random heart of ``image_size`` (H, W) pixels; one channel (cine MRI), labels RV 1, MYO 2, LV 3."""
    spacing = sample_spacing(rng, 1.3, 1.75)
    rows_mm, cols_mm = pixel_grid(image_size, spacing)
    extent_mm = np.array(image_size, float) * np.array(spacing)
    labels = _labels(rng, rows_mm, cols_mm, extent_mm)
    image = _image(rng, labels, rows_mm, cols_mm, extent_mm)
    return SyntheticSlice(image[None], labels, spacing, float(rng.uniform(5.0, 10.0)))


KIND = DatasetKind(
    name="cardiac", summary="short-axis cardiac MRI, labels RV/MYO/LV", dataset_name="CardiacPhantom", default_id=900, case_prefix="phantom_",
    channel_names={"0": "MRI"}, labels=LABELS,
    description="Synthetic short-axis cardiac MRI slices with ACDC-like labels (nnunetv2_mamba phantom).",
    make_slice=make_slice)

"""One synthetic short-axis cardiac MRI slice: ACDC-like labels and an MR-looking image, from numpy/scipy only.

Anatomy (in mm, then rasterised on the pixel grid): a left-ventricle (LV) cavity whose border is a rotated ellipse
with low-order radial harmonics, a myocardium (MYO) ring of varying thickness around it, and a crescent right
ventricle (RV) cavity beside it (an ellipse placed at a random angle next to the heart minus the dilated
epicardium). Image: per-tissue intensities, a smooth textured body background with dark lungs, a smooth
multiplicative bias field, a Gaussian blur (partial volume) and Rician noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

BACKGROUND, RV, MYO, LV = 0, 1, 2, 3
LABELS = {"background": BACKGROUND, "RV": RV, "MYO": MYO, "LV": LV}


@dataclass(frozen=True)
class PhantomSlice:
    """``image`` (H, W) float32, ``labels`` (H, W) uint8 in {0, 1, 2, 3}, ``spacing`` (row, column) mm, and the
    slice ``thickness`` in mm."""
    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float]
    thickness: float


def _rotated(rows_mm: np.ndarray, cols_mm: np.ndarray, center: np.ndarray, angle: float):
    """Coordinates (u, v) of every pixel relative to ``center`` in a frame rotated by ``angle``."""
    dy, dx = rows_mm - center[0], cols_mm - center[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return u, v


def _wobbly_ellipse(rows_mm, cols_mm, center, semi_axes, angle, harmonics) -> np.ndarray:
    """Mask of an ellipse whose radius is modulated by ``1 + sum a_k cos(k phi + p_k)``."""
    u, v = _rotated(rows_mm, cols_mm, center, angle)
    phi = np.arctan2(v, u)
    modulation = 1.0 + sum(a * np.cos(k * phi + p) for k, (a, p) in harmonics.items())
    return (u / semi_axes[0]) ** 2 + (v / semi_axes[1]) ** 2 <= modulation ** 2


def _smooth_field(rng: np.random.Generator, shape, sigma_px: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-smoothed white noise of ``shape``."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="reflect")
    return (field - field.mean()) / (field.std() + 1e-8)


def _labels(rng: np.random.Generator, rows_mm: np.ndarray, cols_mm: np.ndarray, extent_mm: np.ndarray) -> np.ndarray:
    """ACDC-like label map (H, W) for one random heart."""
    center = extent_mm / 2 + rng.uniform(-0.12, 0.12, 2) * extent_mm
    scale = extent_mm.min() / 160.0  # hearts shrink with the field of view so that they always fit
    lv_radius = rng.uniform(10.0, 17.0) * scale
    aspect = rng.uniform(0.85, 1.15)
    angle = rng.uniform(0, np.pi)
    wobble = {k: (rng.uniform(0, 0.06), rng.uniform(0, 2 * np.pi)) for k in (2, 3)}
    lv = _wobbly_ellipse(rows_mm, cols_mm, center, (lv_radius * aspect, lv_radius / aspect), angle, wobble)
    wall = rng.uniform(5.0, 9.0) * scale
    wall_wobble = {k: (a * 0.5, p) for k, (a, p) in wobble.items()}
    epicardium = _wobbly_ellipse(rows_mm, cols_mm, center,
                                 (lv_radius * aspect + wall, lv_radius / aspect + wall), angle, wall_wobble)
    rv_angle = rng.uniform(0, 2 * np.pi)
    rv_offset = (lv_radius + wall) * rng.uniform(0.75, 1.05)
    rv_center = center + rv_offset * np.array([np.sin(rv_angle), np.cos(rv_angle)])
    rv_long = (lv_radius + wall) * rng.uniform(1.15, 1.5)
    rv_short = (lv_radius + wall) * rng.uniform(0.6, 0.85)
    rv_ellipse = _wobbly_ellipse(rows_mm, cols_mm, rv_center, (rv_short, rv_long), rv_angle,
                                 {2: (rng.uniform(0, 0.05), rng.uniform(0, 2 * np.pi))})
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
    body = _wobbly_ellipse(rows_mm, cols_mm, body_center, extent_mm * rng.uniform(0.40, 0.48, 2),
                           rng.uniform(-0.3, 0.3), {3: (0.03, rng.uniform(0, 6.3))})
    tissue = rng.uniform(0.25, 0.45) + 0.08 * _smooth_field(rng, shape, 4 * px)
    lungs = _smooth_field(rng, shape, 10 * px) > rng.uniform(0.6, 1.0)
    image = np.where(body, tissue, 0.0)
    image[body & lungs] = rng.uniform(0.03, 0.08)
    blood = rng.uniform(0.75, 1.0)
    image[labels == LV] = blood + 0.04 * _smooth_field(rng, shape, 2 * px)[labels == LV]
    image[labels == RV] = blood * rng.uniform(0.85, 1.05) + 0.04 * _smooth_field(rng, shape, 2 * px)[labels == RV]
    image[labels == MYO] = rng.uniform(0.18, 0.32)
    bias = np.exp(rng.uniform(0.1, 0.35) * _smooth_field(rng, shape, 30 * px))
    image = ndimage.gaussian_filter(image * bias, rng.uniform(0.5, 1.2) * px)
    sigma = rng.uniform(0.02, 0.06)
    image = np.hypot(image + sigma * rng.standard_normal(shape), sigma * rng.standard_normal(shape))
    return (image * 1000.0).astype(np.float32)


def make_phantom_slice(rng: np.random.Generator, image_size: tuple[int, int] = (128, 128)) -> PhantomSlice:
    """One random phantom of ``image_size`` (H, W) pixels with ACDC-like spacing (about 1.5 mm in plane, 5-10 mm
    slice thickness)."""
    spacing = tuple(float(s) for s in np.full(2, rng.uniform(1.3, 1.75)) * rng.uniform(0.97, 1.03, 2))
    rows_mm, cols_mm = np.meshgrid(np.arange(image_size[0]) * spacing[0], np.arange(image_size[1]) * spacing[1],
                                   indexing="ij")
    extent_mm = np.array(image_size, float) * np.array(spacing)
    labels = _labels(rng, rows_mm, cols_mm, extent_mm)
    image = _image(rng, labels, rows_mm, cols_mm, extent_mm)
    return PhantomSlice(image, labels, spacing, float(rng.uniform(5.0, 10.0)))

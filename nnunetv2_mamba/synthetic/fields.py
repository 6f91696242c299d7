"""Building blocks the generators share: smooth random fields, wobbly ellipses, pixel spacing and the MR
acquisition (bias field, partial-volume blur, Rician noise). numpy/scipy only."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def smooth_field(rng: np.random.Generator, shape, sigma_px: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-smoothed white noise of ``shape``."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="reflect")
    return (field - field.mean()) / (field.std() + 1e-8)


def rotated(rows: np.ndarray, cols: np.ndarray, center: np.ndarray, angle: float):
    """Coordinates (u, v) of every pixel relative to ``center`` in a frame rotated by ``angle``."""
    dy, dx = rows - center[0], cols - center[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return u, v


def wobbly_ellipse(rows, cols, center, semi_axes, angle, harmonics) -> np.ndarray:
    """Mask of an ellipse whose radius is modulated by ``1 + sum a_k cos(k phi + p_k)``; ``harmonics`` maps k to
    (a_k, p_k)."""
    u, v = rotated(rows, cols, center, angle)
    phi = np.arctan2(v, u)
    modulation = 1.0 + sum(a * np.cos(k * phi + p) for k, (a, p) in harmonics.items())
    return (u / semi_axes[0]) ** 2 + (v / semi_axes[1]) ** 2 <= modulation ** 2


def random_harmonics(rng: np.random.Generator, orders, max_amplitude: float) -> dict[int, tuple[float, float]]:
    """Harmonics for :func:`wobbly_ellipse`: amplitude up to ``max_amplitude`` and a random phase per order."""
    return {k: (rng.uniform(0, max_amplitude), rng.uniform(0, 2 * np.pi)) for k in orders}


def pixel_grid(image_size: tuple[int, int], spacing: tuple[float, float] = (1.0, 1.0)):
    """(rows, cols) coordinates of every pixel centre, each (H, W), in units of ``spacing``."""
    return np.meshgrid(np.arange(image_size[0]) * spacing[0], np.arange(image_size[1]) * spacing[1],
                       indexing="ij")


def sample_spacing(rng: np.random.Generator, low_mm: float, high_mm: float) -> tuple[float, float]:
    """In-plane (row, column) spacing: one size in [low_mm, high_mm], each axis then varied by up to 3 %."""
    return tuple(float(s) for s in np.full(2, rng.uniform(low_mm, high_mm)) * rng.uniform(0.97, 1.03, 2))


def mr_acquisition(rng: np.random.Generator, image: np.ndarray, px: float, bias_strength=(0.1, 0.35),
                   blur_px=(0.5, 1.2), noise=(0.02, 0.06), bias_sigma_px: float = 30.0) -> np.ndarray:
    """Image an ideal (H, W) intensity map of order 1 as an MR scanner would: a smooth multiplicative bias field
    ``exp(s * field)`` with s in ``bias_strength``, a Gaussian blur of ``blur_px`` (partial volume) and Rician noise
    of std in ``noise``; returns float32 scaled by 1000. ``px`` scales the pixel lengths (image size / 128)."""
    bias = np.exp(rng.uniform(*bias_strength) * smooth_field(rng, image.shape, bias_sigma_px * px))
    image = ndimage.gaussian_filter(image * bias, rng.uniform(*blur_px) * px)
    sigma = rng.uniform(*noise)
    image = np.hypot(image + sigma * rng.standard_normal(image.shape), sigma * rng.standard_normal(image.shape))
    return (image * 1000.0).astype(np.float32)

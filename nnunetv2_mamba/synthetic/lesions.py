"""Lesions: an abdominal MRI-like slice with one large organ that holds 0-8 small lesions.

The organ is the union of two wobbly ellipses (a liver-like lobed shape); one or two unlabelled neighbour organs of
similar brightness sit next to it, a thin gap apart, inside a body with a bright fat rim. In 80 % of the images
the organ holds 1-8 lesions (else none): ellipses of mean radius 2-5.5 px (aspect 0.75-1.33) at any image size,
each at least 2 px inside the organ and 2 px from the next, all darker (or, in 30 % of the images, all brighter)
than the organ by 35-65 % each. Elongated vessels of either polarity run through the organ as distractors (they
belong to the organ label). Image: per-tissue intensities with texture, bias field, blur, Rician noise. Spacing
2.4-3.0 mm in plane, slice thickness 4-8 mm.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunetv2_mamba.synthetic.fields import (mr_acquisition, pixel_grid, random_harmonics, sample_spacing,
                                             smooth_field, wobbly_ellipse)
from nnunetv2_mamba.synthetic.slices import DatasetKind, SyntheticSlice

BACKGROUND, ORGAN, LESION = 0, 1, 2
LABELS = {"background": BACKGROUND, "organ": ORGAN, "lesion": LESION}
MAX_LESIONS = 8
LESION_RADIUS_PX = (2.0, 5.5)
NO_LESION_PROBABILITY = 0.2


def _organ(rng, rows, cols, shape, px) -> np.ndarray:
    """Liver-like mask: a large wobbly ellipse and a smaller lobe overlapping it."""
    size = np.array(shape, float)
    center = size / 2 + rng.uniform(-0.1, 0.1, 2) * size
    angle = rng.uniform(0, np.pi)
    main = wobbly_ellipse(rows, cols, center, size * rng.uniform(0.17, 0.26, 2), angle,
                          random_harmonics(rng, (2, 3, 4), 0.08))
    lobe_direction = rng.uniform(0, 2 * np.pi)
    lobe_center = center + size.min() * rng.uniform(0.1, 0.18) * np.array([np.sin(lobe_direction),
                                                                           np.cos(lobe_direction)])
    lobe = wobbly_ellipse(rows, cols, lobe_center, size * rng.uniform(0.08, 0.14, 2), rng.uniform(0, np.pi),
                          random_harmonics(rng, (2, 3), 0.08))
    return main | lobe


def _neighbours(rng, rows, cols, organ, body, shape, px) -> np.ndarray:
    """One or two unlabelled organs beside ``organ``, 1-2 px apart from it."""
    size = np.array(shape, float)
    organ_center = np.array(ndimage.center_of_mass(organ))
    organ_radius = np.sqrt(organ.sum() / np.pi)
    neighbours = np.zeros(shape, bool)
    for _ in range(rng.integers(1, 3)):
        direction = rng.uniform(0, 2 * np.pi)
        radius = size.min() * rng.uniform(0.07, 0.12)
        center = organ_center + (organ_radius + radius * 0.6) * np.array([np.sin(direction), np.cos(direction)])
        neighbours |= wobbly_ellipse(rows, cols, center, radius * rng.uniform(0.7, 1.3, 2), rng.uniform(0, np.pi),
                                     random_harmonics(rng, (2, 3), 0.06))
    gap = int(rng.integers(1, 3) * max(1, round(px)))
    return neighbours & body & ~ndimage.binary_dilation(organ, iterations=gap)


def _vessels(rng, rows, cols, organ, px) -> np.ndarray:
    """2-5 straight-ish tubes of radius 0.8-1.8 px and length 10-35 px through the organ."""
    vessels = np.zeros(organ.shape, bool)
    inside = np.argwhere(organ)
    for _ in range(rng.integers(2, 6)):
        start = inside[rng.integers(len(inside))].astype(float)
        angle = rng.uniform(0, 2 * np.pi)
        length, radius = rng.uniform(10, 35) * px, rng.uniform(0.8, 1.8) * px
        direction = np.array([np.sin(angle), np.cos(angle)])
        along = (rows - start[0]) * direction[0] + (cols - start[1]) * direction[1]
        across = (rows - start[0]) * direction[1] - (cols - start[1]) * direction[0]
        bend = rng.uniform(-0.008, 0.008) / px * along ** 2
        vessels |= (np.abs(across - bend) <= radius) & (along >= 0) & (along <= length)
    return vessels & organ


def _lesions(rng, rows, cols, organ) -> list[np.ndarray]:
    """Masks of 0 (with probability 0.2) or 1-8 lesions, each 2 px inside the organ and 2 px from the others."""
    if rng.random() < NO_LESION_PROBABILITY:
        return []
    wanted = int(rng.integers(1, MAX_LESIONS + 1))
    distance_inside = ndimage.distance_transform_edt(organ)
    placed, masks = [], []
    for _ in range(50 * wanted):
        if len(masks) == wanted:
            break
        radius = rng.uniform(*LESION_RADIUS_PX)
        aspect = rng.uniform(0.75, 1.33)
        candidates = np.argwhere(distance_inside >= radius * max(aspect, 1 / aspect) + 2)
        if len(candidates) == 0:
            continue
        center = candidates[rng.integers(len(candidates))].astype(float)
        if any(np.hypot(*(center - c)) < radius * 1.33 + r * 1.33 + 2 for c, r in placed):
            continue
        mask = wobbly_ellipse(rows, cols, center, (radius * aspect, radius / aspect), rng.uniform(0, np.pi), {})
        placed.append((center, radius))
        masks.append(mask)
    return masks


def make_slice(rng: np.random.Generator, image_size: tuple[int, int] = (128, 128)) -> SyntheticSlice:
    """One random slice of ``image_size`` (H, W) pixels; one channel, labels organ 1, lesion 2."""
    shape = tuple(image_size)
    px = max(shape) / 128.0
    rows, cols = pixel_grid(shape)
    size = np.array(shape, float)
    body = wobbly_ellipse(rows, cols, size / 2 + rng.uniform(-0.03, 0.03, 2) * size,
                          size * rng.uniform(0.42, 0.48, 2), rng.uniform(-0.2, 0.2),
                          random_harmonics(rng, (2, 3), 0.04))
    fat = body & ~ndimage.binary_erosion(body, iterations=int(rng.integers(3, 7) * px))
    organ = _organ(rng, rows, cols, shape, px) & ndimage.binary_erosion(body, iterations=int(8 * px))
    neighbours = _neighbours(rng, rows, cols, organ, body, shape, px)
    vessels = _vessels(rng, rows, cols, organ, px)
    lesions = _lesions(rng, rows, cols, organ)

    image = np.where(body, rng.uniform(0.22, 0.35) + 0.05 * smooth_field(rng, shape, 3 * px), 0.0)
    image[fat] = rng.uniform(0.7, 0.9)
    organ_level = rng.uniform(0.45, 0.6)
    texture = 1.0 + 0.06 * smooth_field(rng, shape, 2 * px)
    image[neighbours] = (organ_level * rng.uniform(0.8, 1.2) * texture)[neighbours]
    image[organ] = (organ_level * texture)[organ]
    image[vessels] = organ_level * (1 + rng.choice([-1, 1]) * rng.uniform(0.3, 0.5))
    polarity = 1.0 if rng.random() < 0.3 else -1.0
    for mask in lesions:
        image[mask] = organ_level * (1 + polarity * rng.uniform(0.35, 0.65)) * texture[mask]
    image = mr_acquisition(rng, image, px, bias_strength=(0.1, 0.3), blur_px=(0.5, 1.0), noise=(0.03, 0.06))

    labels = np.zeros(shape, np.uint8)
    labels[organ] = ORGAN
    for mask in lesions:
        labels[mask] = LESION
    spacing = sample_spacing(rng, 2.4, 3.0)
    return SyntheticSlice(image[None], labels, spacing, float(rng.uniform(4.0, 8.0)))


KIND = DatasetKind(
    name="lesions", summary="abdominal MRI-like organ holding 0-8 small lesions per image, labels organ/lesion",
    dataset_name="LesionPhantom", default_id=902, case_prefix="lesions_", channel_names={"0": "MRI"},
    labels=LABELS,
    description="Synthetic abdominal MRI-like slices: one organ with 0-8 small lesions (nnunetv2_mamba).",
    make_slice=make_slice)

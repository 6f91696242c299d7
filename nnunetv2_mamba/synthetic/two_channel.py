"""Two channel: a brain-like slice seen in two MRI contrasts, with blobs that only both channels tell apart.

Anatomy: a head (bright scalp fat rim) around a brain of grey matter (GM) and a gyrated white-matter (WM) core,
two ventricles of cerebrospinal fluid (CSF) and a thin CSF rim. Tissue contrast as in T1 (channel 0: WM > GM >
CSF) and T2 (channel 1: CSF > GM > WM) weighting. 3-6 blobs (wobbly ellipses of radius 3-8 px at 128 px,
scaled with the image) lie in the brain, each of one of three kinds drawn at random: bright in T1 only, bright
in T2 only, or bright in both (T1: above every brain tissue; T2: between grey matter and CSF); in the other channel
a blob keeps its tissue's level within +-4 %.
Every kind has the same shape distribution, so channel 0 alone cannot tell "T1 only" from "both" and does not
show "T2 only"; channel 1 likewise. Each channel gets its own bias field, blur and Rician noise. Spacing
1.4-1.8 mm in plane, slice thickness 3-6 mm.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunetv2_mamba.synthetic.fields import (mr_acquisition, pixel_grid, random_harmonics, sample_spacing,
                                             smooth_field, wobbly_ellipse)
from nnunetv2_mamba.synthetic.slices import DatasetKind, SyntheticSlice

BACKGROUND, T1_ONLY, T2_ONLY, BOTH = 0, 1, 2, 3
LABELS = {"background": BACKGROUND, "bright_T1_only": T1_ONLY, "bright_T2_only": T2_ONLY, "bright_T1_and_T2": BOTH}
#: which channels (T1, T2) each blob kind is bright in
BRIGHT_IN = {T1_ONLY: (True, False), T2_ONLY: (False, True), BOTH: (True, True)}
#: tissue levels (T1, T2) before the per-case variation
TISSUE_LEVELS = {"fat": (0.9, 0.6), "wm": (0.75, 0.4), "gm": (0.55, 0.55), "csf": (0.15, 1.0)}
#: level ranges of a blob in a channel it is bright in (T1, T2): above every brain tissue in T1, between grey
#: matter and CSF in T2
BRIGHT_LEVELS = ((1.0, 1.15), (0.8, 0.9))


def _anatomy(rng, rows, cols, shape, px) -> dict[str, np.ndarray]:
    """Masks of fat, grey matter, white matter and CSF that tile the head."""
    size = np.array(shape, float)
    center = size / 2 + rng.uniform(-0.03, 0.03, 2) * size
    angle = rng.uniform(-0.3, 0.3)
    semi_axes = size * rng.uniform(0.38, 0.46, 2)
    head = wobbly_ellipse(rows, cols, center, semi_axes, angle, random_harmonics(rng, (2, 3), 0.03))
    scalp = int(rng.integers(3, 6) * px)
    brain = ndimage.binary_erosion(head, iterations=scalp)
    parenchyma = ndimage.binary_erosion(brain, iterations=max(1, int(px)))
    wm = wobbly_ellipse(rows, cols, center, semi_axes * rng.uniform(0.6, 0.72), angle,
                        random_harmonics(rng, (5, 6, 7, 8), 0.07)) & parenchyma
    ventricles = np.zeros(shape, bool)
    for side in (-1, 1):
        offset = side * size[1] * rng.uniform(0.04, 0.07)
        ventricles |= wobbly_ellipse(rows, cols, center + np.array([rng.uniform(-0.03, 0.03) * size[0], offset]),
                                     size * np.array([rng.uniform(0.025, 0.045), rng.uniform(0.08, 0.13)]),
                                     side * rng.uniform(0.1, 0.4), random_harmonics(rng, (2,), 0.1))
    return {"fat": head & ~brain, "csf": (brain & ~parenchyma) | ventricles, "wm": wm & ~ventricles,
            "gm": parenchyma & ~wm & ~ventricles}


def _blobs(rng, rows, cols, tissues, px) -> list[tuple[int, np.ndarray]]:
    """3-6 (kind, mask) blobs inside WM/GM, 2 px apart from each other and from CSF."""
    allowed = ndimage.distance_transform_edt(tissues["wm"] | tissues["gm"])
    taken = np.zeros(allowed.shape, bool)
    blobs = []
    wanted = int(rng.integers(3, 7))
    for _ in range(50 * wanted):
        if len(blobs) == wanted:
            break
        radius = rng.uniform(3.0, 8.0) * px
        candidates = np.argwhere(allowed >= radius * 1.2 + 2)
        if len(candidates) == 0:
            continue
        center = candidates[rng.integers(len(candidates))].astype(float)
        aspect = rng.uniform(0.8, 1.25)
        mask = wobbly_ellipse(rows, cols, center, (radius * aspect, radius / aspect), rng.uniform(0, np.pi),
                              random_harmonics(rng, (2, 3), 0.1))
        if (ndimage.binary_dilation(mask, iterations=2) & taken).any():
            continue
        taken |= mask
        blobs.append((int(rng.integers(1, 4)), mask))
    return blobs


def make_slice(rng: np.random.Generator, image_size: tuple[int, int] = (128, 128)) -> SyntheticSlice:
    """One random slice of ``image_size`` (H, W) pixels; channels T1, T2; labels bright_T1_only 1,
    bright_T2_only 2, bright_T1_and_T2 3."""
    shape = tuple(image_size)
    px = max(shape) / 128.0
    rows, cols = pixel_grid(shape)
    tissues = _anatomy(rng, rows, cols, shape, px)
    blobs = _blobs(rng, rows, cols, tissues, px)
    textures = 1.0 + 0.05 * np.stack([smooth_field(rng, shape, 2 * px) for _ in range(2)])
    ideal = np.zeros((2, *shape))
    for channel in range(2):
        for tissue, mask in tissues.items():
            ideal[channel][mask] = TISSUE_LEVELS[tissue][channel] * rng.uniform(0.9, 1.1) * textures[channel][mask]
    labels = np.zeros(shape, np.uint8)
    for kind, mask in blobs:
        for channel, bright in enumerate(BRIGHT_IN[kind]):
            if bright:
                ideal[channel][mask] = rng.uniform(*BRIGHT_LEVELS[channel]) * textures[channel][mask]
            else:
                ideal[channel][mask] *= 1.0 + rng.uniform(-0.04, 0.04)
        labels[mask] = kind
    images = np.stack([mr_acquisition(rng, ideal[channel], px, bias_strength=(0.05, 0.2), blur_px=(0.5, 1.0),
                                      noise=(0.03, 0.06)) for channel in range(2)])
    spacing = sample_spacing(rng, 1.4, 1.8)
    return SyntheticSlice(images, labels, spacing, float(rng.uniform(3.0, 6.0)))


KIND = DatasetKind(
    name="two_channel", summary="two MRI contrasts (T1, T2) with blobs bright in T1 only, T2 only or both",
    dataset_name="TwoContrastPhantom", default_id=903, case_prefix="twocontrast_",
    channel_names={"0": "T1", "1": "T2"}, labels=LABELS,
    description="Synthetic brain-like slices in two MRI contrasts (T1, T2); blobs bright in T1 only, T2 only or "
                "both, which only both channels tell apart (nnunetv2_mamba).",
    make_slice=make_slice)

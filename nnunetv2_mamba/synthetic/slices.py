"""What every generator returns (one slice) and what describes a kind of data set to the writer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class SyntheticSlice:
    """``images`` (C, H, W) float32 (one per input channel), ``labels`` (H, W) uint8, in-plane ``spacing``
    (row, column) in mm, and the slice ``thickness`` in mm."""
    images: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float]
    thickness: float


@dataclass(frozen=True)
class DatasetKind:
    """One kind of synthetic data set: its generator ``make_slice(rng, (H, W)) -> SyntheticSlice``, what goes
    into dataset.json (``channel_names`` index -> name, ``labels`` name -> value) and the file names, and a
    one-line ``summary`` for ``--help``."""
    name: str
    summary: str
    dataset_name: str
    default_id: int
    case_prefix: str
    channel_names: dict[str, str]
    labels: dict[str, int]
    description: str
    make_slice: Callable[[np.random.Generator, tuple[int, int]], SyntheticSlice]

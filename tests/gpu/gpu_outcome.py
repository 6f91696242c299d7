"""What one GPU check case reports (:class:`Outcome`), its errors against a reference, and how times print."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from nnunetv2_mamba.measurement import median


@dataclass
class Outcome:
    """What a case's measurement returns: whether it passed, a one-line result, its time, the raw numbers."""
    passed: bool
    result: str
    time: str = ""
    data: dict = field(default_factory=dict)


def errors(found: torch.Tensor, expected: torch.Tensor, rtol: float = 0.0, atol: float = 0.0) -> dict:
    """max_abs = max |found - expected|; max_rel = max_abs / max |expected|; tol_ratio = the largest
    |found - expected| / (atol + rtol |expected|), <= 1 exactly where torch.allclose(found, expected, rtol, atol)
    holds (inf if anything is not finite, or where rtol = atol = 0 and the values differ)."""
    if found.shape != expected.shape:
        raise ValueError(f"shape {tuple(found.shape)} where {tuple(expected.shape)} was expected")
    found, expected = found.detach().double(), expected.detach().double()
    difference = (found - expected).abs()
    max_abs = difference.max().item() if difference.numel() else 0.0
    scale = expected.abs().max().item() if expected.numel() else 0.0
    bound = atol + rtol * expected.abs()
    ratio = torch.where(difference == 0, torch.zeros_like(difference), difference / bound)
    tol_ratio = ratio.max().item() if ratio.numel() else 0.0
    if not (torch.isfinite(found).all() and torch.isfinite(expected).all()):
        max_abs = tol_ratio = math.inf
    return {"max_abs": max_abs, "max_rel": max_abs / scale if scale else max_abs, "tol_ratio": tol_ratio}


def worst(table: dict[str, dict], key: str) -> tuple[str, dict]:
    """(name, errors) of the entry with the largest ``key`` (NaN counts as largest)."""
    return max(table.items(), key=lambda item: math.inf if math.isnan(item[1][key]) else item[1][key])


def ms(value: float) -> str:
    """Milliseconds with 3 significant digits, never in exponent notation."""
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def milliseconds(times_s: list[float]) -> str:
    """"<median> ms (median of n)" of timings in seconds."""
    return f"{ms(1e3 * median(times_s))} ms (median of {len(times_s)})"


def in_ms(times_s: list[float]) -> list[float]:
    return [1e3 * t for t in times_s]

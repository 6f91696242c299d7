"""Paired comparisons over shared cases: Wilcoxon signed-rank tests of every method against the baseline, per
metric; the mean difference with its paired bootstrap interval; the noise floor of seeded repeats and whether a
difference stands out of it."""
from __future__ import annotations

import math

import numpy as np


def paired_values(baseline: dict, other: dict, class_name: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``metric`` for ``class_name`` on the cases both per-case dicts have, where both are finite."""
    pairs = [(baseline[c][class_name][metric], other[c][class_name][metric]) for c in sorted(baseline) if c in other]
    pairs = [(a, b) for a, b in pairs if not (math.isnan(a) or math.isnan(b))]
    if not pairs:
        return np.empty(0), np.empty(0)
    a, b = np.array(pairs, dtype=float).T
    return a, b


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of scipy's Wilcoxon signed-rank test on pairs (a, b); 1.0 when all pairs are equal,
    NaN with no pairs. With few cases the smallest reachable p is large (n=5: 0.0625), so read it with n."""
    from scipy.stats import wilcoxon

    if a.size == 0:
        return math.nan
    if np.allclose(a, b, rtol=0, atol=1e-12):  # metrics of equal masks are the same float64 numbers, to the bit
        return 1.0
    return float(wilcoxon(a, b).pvalue)


def compare_to_baseline(cases_by_method: dict[str, dict], metrics: list[str], class_name: str) -> dict:
    """{method: {metric: {"p", "n", "mean_difference" (method - baseline)}}} for every method but the first."""
    names = list(cases_by_method)
    baseline = cases_by_method[names[0]]
    table = {}
    for name in names[1:]:
        table[name] = {}
        for metric in metrics:
            a, b = paired_values(baseline, cases_by_method[name], class_name, metric)
            table[name][metric] = {"p": wilcoxon_p(a, b), "n": int(a.size),
                                   "mean_difference": float(np.mean(b - a)) if a.size else math.nan}
    return table


#: the paired bootstrap's confidence level, resamples and fixed random state (the same interval on every run)
CONFIDENCE, RESAMPLES, RANDOM_STATE = 0.95, 9999, 0


def _mean_difference(b: np.ndarray, a: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(b - a, axis=axis)


def bootstrap_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """95 % interval of mean(b - a) from scipy's paired bootstrap (BCa, 9999 resamples, ``RANDOM_STATE``): cases
    are resampled with both values of their pair. (d, d) when every pair differs by the same d (no spread to
    resample); (NaN, NaN) with fewer than two pairs."""
    from scipy.stats import bootstrap

    if a.size < 2:
        return math.nan, math.nan
    differences = b - a
    if np.allclose(differences, differences[0], rtol=0, atol=1e-12):
        return float(differences.mean()), float(differences.mean())
    result = bootstrap((b, a), _mean_difference, paired=True, vectorized=True, confidence_level=CONFIDENCE,
                       n_resamples=RESAMPLES, random_state=RANDOM_STATE)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_comparison(a: np.ndarray, b: np.ndarray) -> dict:
    """{"n", "difference" (mean of b - a), "low", "high" (its bootstrap interval), "p" (Wilcoxon)} of pairs (a, b)."""
    low, high = bootstrap_interval(a, b)
    return {"n": int(a.size), "difference": float(np.mean(b - a)) if a.size else math.nan, "low": low,
            "high": high, "p": wilcoxon_p(a, b)}


def noise_floor(repeat_values: list[float]) -> float | None:
    """The largest difference between two repeats of one method (max - min of its per-repeat values, NaN ones
    left out): what two trainings differing only in their seed already differ by. None with fewer than two."""
    values = [v for v in repeat_values if not math.isnan(v)]
    return max(values) - min(values) if len(values) >= 2 else None


def within_noise(comparison: dict, floor: float | None) -> list[str]:
    """Why a comparison's difference is not a result: its size inside the noise floor, its interval covering 0
    (both, one, or none: an empty list means it stands out of both)."""
    reasons = []
    if floor is not None and abs(comparison["difference"]) <= floor:
        reasons.append(f"within the noise floor ({floor:.4f})")
    if not comparison["low"] > 0 and not comparison["high"] < 0:  # NaN bounds: no interval, nothing excluded
        reasons.append("interval covers 0")
    return reasons

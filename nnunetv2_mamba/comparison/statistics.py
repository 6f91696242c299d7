"""Paired Wilcoxon signed-rank tests of every method against the baseline, per metric, over shared cases."""
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

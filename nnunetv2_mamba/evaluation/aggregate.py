"""Mean ± standard deviation of per-case metrics, per class and over the foreground classes."""
from __future__ import annotations

import math

import numpy as np

from nnunetv2_mamba.evaluation.metrics import DISTANCE_METRICS, METRICS

#: pseudo-class holding, per case, the mean over the foreground classes (the papers' single-number table)
CLASS_MEAN = "mean"


def with_class_mean(per_class: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Adds ``CLASS_MEAN``: per metric, the mean over classes of one case (NaN distances left out; NaN if all are)."""
    mean = {}
    for metric in METRICS:
        values = [v[metric] for v in per_class.values() if not math.isnan(v[metric])]
        mean[metric] = float(np.mean(values)) if values else math.nan
    return {**per_class, CLASS_MEAN: mean}


def summarize(values: list[float]) -> dict[str, float | int]:
    """{mean, std (population, ddof 0), n (finite values used), n_undefined (NaN values left out)}."""
    array = np.asarray(values, dtype=float)
    finite = array[~np.isnan(array)]
    return {"mean": float(finite.mean()) if finite.size else math.nan,
            "std": float(finite.std()) if finite.size else math.nan,
            "n": int(finite.size), "n_undefined": int(array.size - finite.size)}


def aggregate(cases: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict]]:
    """{class: {metric: summarize(values over cases)}} from {case: {class: {metric: value}}}.

    Distance metrics keep ``n_undefined``: cases where exactly one of reference/prediction was empty; for
    ``CLASS_MEAN``, cases where that happened in any class (their class mean is over the defined classes only).
    """
    classes = next(iter(cases.values())).keys() if cases else []
    result = {}
    for name in classes:
        result[name] = {}
        for metric in METRICS:
            summary = summarize([case[name][metric] for case in cases.values()])
            if metric not in DISTANCE_METRICS:
                summary.pop("n_undefined")
            elif name == CLASS_MEAN:
                summary["n_undefined"] = sum(any(math.isnan(scores[metric]) for c, scores in case.items()
                                                 if c != CLASS_MEAN) for case in cases.values())
            result[name][metric] = summary
    return result

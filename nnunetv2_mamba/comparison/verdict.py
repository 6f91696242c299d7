"""The report's answer to "does it segment better, and is it the scan?": the verdict it opens with, the Dice
differences against the baseline and against each Mamba network's scan controls (paired over every fold's cases,
with their bootstrap interval and Wilcoxon p), the seeded repeats' mean ± sd and the noise floor, from the saved
``results.json`` alone.

Every difference is of the per-case Dice, mean over classes, between the first seed's runs (the report's rows);
the noise floor is the baseline's largest difference in cross-validation Dice between two of its seeds, so a
difference between two single runs is compared with what two single runs of one method already differ by.
"""
from __future__ import annotations

import math

import numpy as np

from nnunetv2_mamba.comparison.formatting import number, p_value
from nnunetv2_mamba.comparison.statistics import noise_floor, paired_comparison, paired_values, within_noise
from nnunetv2_mamba.evaluation.aggregate import CLASS_MEAN

NO_FLOOR = "no noise floor (it needs --repeats 2 or more)"
#: the scan's cost in the controls' sections: (column, cost key, scale, digits)
SCAN_COST = (("Params (M)", "parameters", 1e-6, 2), ("GFLOPs / patch", "flops", 1e-9, 2),
             ("train s/it", "train_seconds_per_iteration", 1, 3), ("peak train mem (MB)", "peak_memory_mb", 1, 0))


class Bullets(tuple):
    """A report section shown as a bulleted list."""


def _cv(dice_by_case: dict[str, float]) -> float:
    finite = [v for v in dice_by_case.values() if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def baseline(results: dict) -> str:
    return next(iter(results["splits"]["validation"]))


def mamba_networks(results: dict) -> list[str]:
    """Our compared networks with their scan (no control), in the report's order."""
    return [n for n, m in results["methods"].items() if m.get("ours") and "scan_control" not in m]


def controls_of(results: dict, parent: str) -> list[str]:
    return [n for n, m in results["methods"].items() if m.get("control_of") == parent]


def floor(results: dict) -> float | None:
    """The baseline's repeat-to-repeat difference in cross-validation Dice; None without two of its repeats."""
    repeats = results.get("repeats", {}).get(baseline(results), {})
    return noise_floor([_cv(cases) for cases in repeats.values()])


def compare(results: dict, reference: str, other: str) -> dict:
    """``paired_comparison`` of ``other`` - ``reference`` over their shared validation cases, with ``noise``: why it
    is not a result (``within_noise``)."""
    validation = results["splits"]["validation"]
    a, b = paired_values(validation[reference]["cases"], validation[other]["cases"], CLASS_MEAN, "Dice")
    comparison, value = paired_comparison(a, b), floor(results)
    return {**comparison, "floor": value, "noise": within_noise(comparison, value)}


def _described(comparison: dict) -> str:
    """``Δ +0.0123 [-0.0040, +0.0300], p=0.1250 (n=16): within the noise floor (0.0150); interval covers 0``, or
    why it is a result: outside the noise floor, its interval excluding 0."""
    text = (f"Δ {number(comparison['difference'], sign=True)} [{number(comparison['low'], sign=True)}, "
            f"{number(comparison['high'], sign=True)}], {p_value(comparison['p'])} (n={comparison['n']})")
    if comparison["noise"]:
        return f"{text}: {'; '.join(comparison['noise'])}"
    if comparison["floor"] is None:
        return f"{text}: interval excludes 0; {NO_FLOOR}"
    return f"{text}: outside the noise floor ({comparison['floor']:.4f}), interval excludes 0"


def comparison_rows(results: dict, pairs: list[tuple[str, str, str]]) -> list[list[str]]:
    """Rows (header first) of (label, reference, other) pairs: Δ Dice (other - reference), its 95 % paired
    bootstrap interval, Wilcoxon p and n, and the noise marks."""
    rows = [["Comparison", "Δ Dice", "95 % bootstrap interval", "Wilcoxon p (n)", "Not a result when marked"]]
    for label, reference, other in pairs:
        c = compare(results, reference, other)
        interval = f"[{number(c['low'], sign=True)}, {number(c['high'], sign=True)}]"
        rows.append([label, number(c["difference"], sign=True), interval, f"{p_value(c['p'])} ({c['n']})",
                     "; ".join(c["noise"]) or "–"])
    return rows


def baseline_rows(results: dict) -> list[list[str]]:
    """Every other validation row (ensembles included) against the baseline."""
    first = baseline(results)
    return comparison_rows(results, [(f"{n} − {first}", first, n) for n in results["splits"]["validation"]
                                     if n != first])


def control_pairs(results: dict, parent: str) -> list[tuple[str, str, str]]:
    """(label, control, parent): a positive Δ is what the scan adds."""
    return [(f"{parent} − {control}", control, parent) for control in controls_of(results, parent)]


def scan_cost_rows(results: dict, parent: str) -> list[list[str]]:
    """Rows (header first): the parent's and its controls' cost, each control's with its ratio to the parent."""
    costs = results.get("costs", {})
    rows = [["Method", *(column for column, *_ in SCAN_COST)]]
    for name in [parent, *controls_of(results, parent)]:
        cells = [name]
        for _, key, scale, digits in SCAN_COST:
            value, own = costs.get(name, {}).get(key), costs.get(parent, {}).get(key)
            text = number(None if value is None else value * scale, digits)
            if name != parent and value is not None and own:
                text += f" ({value / own:.2f}x)"
            cells.append(text)
        rows.append(cells)
    return rows


def repeat_rows(results: dict) -> list[list[str]]:
    """Rows (header first): per method its Dice per fold and over the cross-validation, mean ± sd (ddof 1) over
    its finished repeats, and each repeat's cross-validation Dice."""
    fold_of_case = results.get("fold_of_case", {})
    folds = sorted(set(fold_of_case.values()))
    rows = [["Method", *(f"fold {f}" for f in folds), "CV", "CV per seed"]]
    for name, by_seed in results.get("repeats", {}).items():
        per_fold = [[_cv({c: v for c, v in cases.items() if fold_of_case.get(c) == f}) for cases in by_seed.values()]
                    for f in folds]
        cv = [_cv(cases) for cases in by_seed.values()]
        rows.append([name, *map(_mean_sd, per_fold), _mean_sd(cv),
                     ", ".join(f"{seed}: {number(v)}" for seed, v in zip(by_seed, cv))])
    return rows


def _mean_sd(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    sd = f"{np.std(finite, ddof=1):.4f}" if len(finite) > 1 else "n/a"
    return f"{np.mean(finite):.4f} ± {sd} (n={len(finite)})"


def floor_text(results: dict) -> str:
    value, first = floor(results), baseline(results)
    if value is None:
        return (f"The baseline {first} has fewer than two finished repeats: {NO_FLOOR}; differences are marked "
                "only where their bootstrap interval covers 0.")
    return (f"Noise floor {value:.4f}: the largest difference in cross-validation Dice between two seeds of the "
            f"baseline {first}. Every row and comparison in this report is of each method's first seed (as are "
            "nnU-Net's selection and the test predictions); a difference between two methods' runs no larger than "
            "the floor is marked 'within the noise floor', one whose 95 % paired bootstrap interval covers 0, "
            "'interval covers 0'.")


def _best_single(results: dict) -> tuple[str, float, str]:
    """(method, CV Dice, how it was measured) of the best single method: by its mean over repeats where it has
    them, else by its first seed's cross-validation Dice."""
    validation, repeats = results["splits"]["validation"], results.get("repeats", {})

    def cv(name: str) -> tuple[float, str]:
        runs = [_cv(cases) for cases in repeats.get(name, {}).values()]
        finite = [v for v in runs if not math.isnan(v)]
        if len(finite) > 1:
            return float(np.mean(finite)), f"mean of {len(finite)} repeats"
        return _cv({c: s[CLASS_MEAN]["Dice"] for c, s in validation[name]["cases"].items()}), "one run"

    scores = {name: cv(name) for name in results["methods"] if name in validation}
    best = max(scores, key=lambda n: -math.inf if math.isnan(scores[n][0]) else scores[n][0])
    return best, *scores[best]


def _test_dice(results: dict, row: str) -> str:
    test = results["splits"].get("test", {})
    return f", test Dice {number(test[row]['aggregate'][CLASS_MEAN]['Dice']['mean'])}" if row in test else ""


def verdict(results: dict) -> Bullets:
    """The report's opening lines: the best single method and nnU-Net's choice with their CV (and test) Dice, the
    noise floor, and each Mamba network against the baseline and against its scan controls, marked."""
    best, dice, measured = _best_single(results)
    lines = [f"Best single method: {best}, CV Dice {number(dice)} ({measured}){_test_dice(results, best)}."]
    selection = results.get("selection")
    if selection:
        row = next((r for r in results["splits"].get("test", {}) if r.startswith("best: ")), None)
        lines.append(f"nnU-Net's choice: {selection['best']}, its CV Dice "
                     f"{number(selection['dice_before_postprocessing'])} "
                     f"({number(selection['dice_after_postprocessing'])} postprocessed)"
                     + (_test_dice(results, row) if row else "") + ".")
    value = floor(results)
    lines.append(NO_FLOOR[0].upper() + NO_FLOOR[1:] + "." if value is None else
                 f"Noise floor (the baseline's repeat-to-repeat difference in CV Dice): {value:.4f}.")
    first = baseline(results)
    for network in mamba_networks(results):
        if network != first:
            lines.append(f"{network} vs the baseline {first}: {_described(compare(results, first, network))}.")
        for _, control, parent in control_pairs(results, network):
            lines.append(f"{parent} vs its control {control}: {_described(compare(results, control, parent))}.")
    return Bullets(lines)

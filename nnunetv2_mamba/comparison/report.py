"""``report.md`` and ``report.html`` of a benchmark, and its figures, from the saved ``results.json`` alone."""
from __future__ import annotations

import html
import math
from pathlib import Path

from nnunetv2_mamba.comparison import figures
from nnunetv2_mamba.comparison.statistics import compare_to_baseline
from nnunetv2_mamba.evaluation.aggregate import CLASS_MEAN
from nnunetv2_mamba.evaluation.folder import load_results
from nnunetv2_mamba.evaluation.metrics import DISTANCE_METRICS, METRICS

RESULTS_FILE = "results.json"
COST_COLUMNS = (("Params (M)", "parameters", 1e-6, 2), ("GFLOPs", "flops", 1e-9, 2),
                ("train s/it", "train_seconds_per_iteration", 1, 3),
                ("infer s/case", "inference_seconds_per_case", 1, 3), ("peak mem (MB)", "peak_memory_mb", 1, 0))


def number(value, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _best(values: list[float], metric: str) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return None
    return min(finite) if metric in DISTANCE_METRICS else max(finite)


def metric_table(split: dict, class_name: str, costs: dict | None = None) -> list[list[str]]:
    """Rows (header first) of mean ± std per metric for ``class_name``; best mean in bold; optional cost columns.
    Distance metrics with undefined cases show "(k undef.)"."""
    methods = list(split)
    header = ["Method", *METRICS] + ([c[0] for c in COST_COLUMNS] if costs else [])
    rows = [header]
    best = {m: _best([split[n]["aggregate"][class_name][m]["mean"] for n in methods], m) for m in METRICS}
    for name in methods:
        cells = [name]
        for metric in METRICS:
            summary = split[name]["aggregate"][class_name][metric]
            text = f"{number(summary['mean'])} ± {number(summary['std'])}"
            if summary["mean"] == best[metric]:
                text = f"**{text}**"
            if summary.get("n_undefined"):
                text += f" ({summary['n_undefined']} undef.)"
            cells.append(text)
        if costs:
            cost = costs.get(name, {})
            cells += [number(None if cost.get(key) is None else cost[key] * scale, digits)
                      for _, key, scale, digits in COST_COLUMNS]
        rows.append(cells)
    return rows


def wilcoxon_table(split: dict) -> list[list[str]]:
    """Rows: p-value (mean difference vs baseline, n pairs) per method and metric on the per-case class mean."""
    tests = compare_to_baseline({n: r["cases"] for n, r in split.items()}, list(METRICS), CLASS_MEAN)
    rows = [["Method vs " + next(iter(split)), *METRICS]]
    for name, per_metric in tests.items():
        rows.append([name, *(f"p={number(t['p'], 4)} (Δ {number(t['mean_difference'], 4)}, n={t['n']})"
                             for t in per_metric.values())])
    return rows


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def html_table(rows: list[list[str]]) -> str:
    def cell(text: str, tag: str) -> str:
        escaped = html.escape(text)
        if escaped.startswith("**"):
            end = escaped.index("**", 2)
            escaped = f"<b>{escaped[2:end]}</b>{escaped[end + 2:]}"
        return f"<{tag}>{escaped}</{tag}>"
    head = "".join(cell(c, "th") for c in rows[0])
    body = "".join("<tr>" + "".join(cell(c, "td") for c in r) + "</tr>" for r in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(report_dir: str | Path) -> Path:
    """Regenerate every figure and ``report.md`` / ``report.html`` in ``report_dir`` from its results.json."""
    report_dir = Path(report_dir)
    results_path = report_dir / RESULTS_FILE
    if not results_path.is_file():
        raise SystemExit(f"{results_path} does not exist; run the benchmark without --report-only first.")
    results = load_results(results_path)
    sections: list[tuple[str, object]] = []  # (heading, markdown/html rows or an image path or a paragraph)
    sections.append(("intro", _intro(results)))
    for split_name, split in results["splits"].items():
        labels = next(iter(split.values()))["labels"]
        sections.append((f"{split_name.capitalize()}: mean over classes ({_case_count(split)} cases)",
                         metric_table(split, CLASS_MEAN, results["costs"])))
        for class_name in labels:
            sections.append((f"{split_name.capitalize()}: {class_name}", metric_table(split, class_name)))
        if len(split) > 1:
            sections.append((f"{split_name.capitalize()}: paired Wilcoxon signed-rank test vs the baseline "
                             "(per-case mean over classes, two-sided)", wilcoxon_table(split)))
        histogram = figures.dice_histograms(split, report_dir / f"dice_histogram_{split_name}.png")
        sections.append((f"{split_name.capitalize()}: Dice histograms", histogram))
        sources = results["overlay_sources"].get(split_name)
        if sources:
            overlay = figures.overlays(sources, labels, report_dir / f"overlays_{split_name}.png")
            sections.append((f"{split_name.capitalize()}: random cases (dashed reference, solid prediction)",
                             overlay))
    if results["curves"]:
        sections.append(("Training curves (nnU-Net's per-epoch log)",
                         figures.training_curves(results["curves"], report_dir / "training_curves.png")))
    sections.append(("Notes", _notes()))
    (report_dir / "report.md").write_text(_render_markdown(sections, report_dir))
    (report_dir / "report.html").write_text(_render_html(sections, report_dir))
    return report_dir / "report.md"


def _case_count(split: dict) -> int:
    return len(next(iter(split.values()))["cases"])


def _intro(results: dict) -> str:
    trained = ", ".join(f"{n} (trained as {t})" if n != t else n for n, t in results["trained_as"].items())
    budget = results.get("budget") or {}
    budget_text = ", ".join(f"{k}={v}" for k, v in budget.items() if v is not None) or "each trainer's own"
    return (f"Dataset {results['dataset']}, configuration {results['configuration']}, plans nnUNetPlans, "
            f"folds {results['folds']}, device {results['device']}. Methods: {trained}; the first is the baseline. "
            f"Same preprocessing, patch size, batch size and splits for all; training budget: {budget_text}.")


def _notes() -> str:
    return ("Metrics per case and class (Dice, IoU, Accuracy, Precision, Sensitivity, Specificity; HD95 and ASD "
            "in mm with the images' spacing, medpy), mean ± std (ddof 0) over cases; 'mean over classes' averages "
            "the foreground classes per case first. Both masks empty: Dice 1, HD95/ASD 0. One empty: Dice 0, "
            "HD95/ASD undefined, left out of the means and counted as 'undef.'. Best mean in bold (lowest for "
            "HD95/ASD). Params and FLOPs of the training network (deep supervision on) at the plans' patch size, "
            "batch 1, forward: torch's FlopCounterMode (multiply-add = 2 FLOPs) plus the selective scan's "
            "9·B·L·D·N per scan, which the counter does not see. train s/it: median epoch wall time / training "
            "iterations per epoch from nnU-Net's log (data loading and per-epoch validation included). infer "
            "s/case: nnUNetv2_predict wall time / cases (start-up and model loading included). Peak memory: one "
            "fwd+bwd at the plans' batch size in a fresh process (CUDA: max allocated; CPU: peak RSS incl. runtime).")


def _render_markdown(sections, report_dir: Path) -> str:
    parts = ["# Benchmark report"]
    for heading, body in sections:
        if heading == "intro":
            parts.append(body)
        elif isinstance(body, Path):
            parts.append(f"## {heading}\n\n![{heading}]({body.relative_to(report_dir)})")
        elif isinstance(body, list):
            parts.append(f"## {heading}\n\n{markdown(body)}")
        else:
            parts.append(f"## {heading}\n\n{body}")
    return "\n\n".join(parts) + "\n"


def _render_html(sections, report_dir: Path) -> str:
    parts = ["<html><head><meta charset='utf-8'><title>Benchmark report</title><style>"
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body><h1>Benchmark report</h1>"]
    for heading, body in sections:
        if heading == "intro":
            parts.append(f"<p>{html.escape(body)}</p>")
        elif isinstance(body, Path):
            parts.append(f"<h2>{html.escape(heading)}</h2><img src='{body.relative_to(report_dir)}'>")
        elif isinstance(body, list):
            parts.append(f"<h2>{html.escape(heading)}</h2>{html_table(body)}")
        else:
            parts.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(body)}</p>")
    return "".join(parts) + "</body></html>\n"


def save_results(results: dict, report_dir: Path) -> Path:
    """Write results.json (NaN as null) into ``report_dir``."""
    from nnunetv2_mamba.evaluation.folder import to_json_text

    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / RESULTS_FILE
    path.write_text(to_json_text(results))
    return path


__all__ = ["write_report", "save_results", "metric_table", "wilcoxon_table"]

"""``report.md`` and ``report.html`` of a benchmark, and its figures, from the saved ``results.json`` alone."""
from __future__ import annotations

import html
import math
import re
from pathlib import Path

from nnunetv2_mamba.comparison import figures, verdict
from nnunetv2_mamba.comparison.formatting import number, p_value as _p_value
from nnunetv2_mamba.comparison.workspace import CPU_SETTINGS
from nnunetv2_mamba.comparison.statistics import compare_to_baseline
from nnunetv2_mamba.evaluation.aggregate import CLASS_MEAN
from nnunetv2_mamba.evaluation.folder import load_results
from nnunetv2_mamba.evaluation.metrics import DISTANCE_METRICS, METRICS

RESULTS_FILE = "results.json"
COST_COLUMNS = (("Params (M)", "parameters", 1e-6, 2), ("GFLOPs / patch", "flops", 1e-9, 2),
                ("peak train mem (MB)", "peak_memory_mb", 1, 0), ("train s/it", "train_seconds_per_iteration", 1, 3),
                ("infer s/case", "inference_seconds_per_case", 1, 3))


class Code(str):
    """A report section shown as preformatted text (nnU-Net's inference instructions)."""


def _is_candidate(summary: dict) -> bool:
    """A mean that may be called the best: defined, and over every case (no undefined distance left out)."""
    return not math.isnan(summary["mean"]) and not summary.get("n_undefined")


def _best(summaries: list[dict], metric: str) -> float | None:
    """Best mean among the candidates (lowest for distances); None if there is none."""
    means = [s["mean"] for s in summaries if _is_candidate(s)]
    if not means or (len(means) > 1 and len(set(means)) == 1):
        return None  # no candidate, or all the same (every method 0 Dice, say): none is best
    return min(means) if metric in DISTANCE_METRICS else max(means)


def metric_table(split: dict, class_name: str) -> list[list[str]]:
    """Rows (header first) of mean ± std per metric for ``class_name``. The best mean is bold, chosen only among
    means without undefined cases: a distance undefined in k cases shows "(k undef.)" beside a mean that is never
    bold (leaving the hardest cases out would reward missing a class)."""
    methods = list(split)
    header = ["Method", *METRICS]
    rows = [header]
    best = {m: _best([split[n]["aggregate"][class_name][m] for n in methods], m) for m in METRICS}
    for name in methods:
        cells = [name]
        for metric in METRICS:
            summary = split[name]["aggregate"][class_name][metric]
            text = f"{number(summary['mean'])} ± {number(summary['std'])}"
            if _is_candidate(summary) and summary["mean"] == best[metric]:
                text = f"**{text}**"
            if summary.get("n_undefined"):
                text += f" ({summary['n_undefined']} undef.)"
            cells.append(text)
        rows.append(cells)
    return rows


def fold_table(split: dict, fold_of_case: dict[str, int], metric: str = "Dice") -> list[list[str]]:
    """Rows (header first): per method the mean over classes of ``metric`` averaged over each fold's validation
    cases, and over all of them (the cross-validation mean, every case weighing the same)."""
    folds = sorted(set(fold_of_case.values()))
    rows = [["Method", *(f"fold {f}" for f in folds), "CV mean"]]
    for name, result in split.items():
        cases = result["cases"]
        per_fold = [[cases[c][CLASS_MEAN][metric] for c in cases if fold_of_case.get(c) == f] for f in folds]
        rows.append([name, *(number(_nanmean(v)) if v else "–" for v in per_fold),
                     number(_nanmean([c[CLASS_MEAN][metric] for c in cases.values()]))])
    return rows


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def cost_table(results: dict) -> list[list[str]]:
    """Rows (header first): per method its plans, patch and batch, the ``COST_COLUMNS``, GFLOPs per training step
    (patch x batch) and, for each of our networks, the compute-matched baseline: the method not of ours whose
    GFLOPs per training step are nearest (by ratio)."""
    costs, methods = results["costs"], results.get("methods", {})
    step = {n: c["flops"] * c["batch_size"] for n, c in costs.items() if c.get("flops") is not None}
    baselines = [n for n in costs if not methods.get(n, {}).get("ours", False) and n in step]
    rows = [["Method", "Plans, configuration", "Patch, batch", *(c[0] for c in COST_COLUMNS), "GFLOPs / step",
             "Compute-matched baseline", "Measured on", "train wall (min / run)"]]
    for name, cost in costs.items():
        method = methods.get(name, {})
        matched = "–"
        if method.get("ours") and baselines and name in step:
            nearest = min(baselines, key=lambda b: abs(math.log(step[b] / step[name])))
            matched = f"{nearest} ({step[name] / step[nearest]:.2f}x its GFLOPs / step)"
        plans = f"{method.get('plans', 'nnUNetPlans')}, {method.get('configuration', results['configuration'])}"
        rows.append([name, plans,
                     f"{' x '.join(map(str, cost.get('patch_size', [])))}, {cost.get('batch_size', 'n/a')}",
                     *(number(None if cost.get(key) is None else cost[key] * scale, digits)
                       for _, key, scale, digits in COST_COLUMNS),
                     number(step[name] * 1e-9 if name in step else None, 2), matched, cost.get("device", "–"),
                     number(_train_wall_minutes(results.get("curves", {}).get(name, {})), 1)])
    return rows


def _train_wall_minutes(folds: dict) -> float | None:
    """Mean over a method's runs of the wall time from its first epoch's start to its last epoch's end (nnU-Net's
    log), in minutes; None without runs."""
    walls = [(log["epoch_end_timestamps"][-1] - log["epoch_start_timestamps"][0]) / 60 for log in folds.values()
             if log.get("epoch_end_timestamps")]
    return sum(walls) / len(walls) if walls else None


def selection_table(selection: dict) -> list[list[str]]:
    """Rows (header first): nnU-Net's cross-validation Dice (foreground mean, its summary.json) per candidate model
    and pairwise ensemble, its choice in bold."""
    rows = [["Model or ensemble", "nnU-Net CV Dice"]]
    for name, dice in sorted(selection["candidates"].items(), key=lambda item: -item[1]):
        text = [name, number(dice)]
        rows.append([f"**{t}**" for t in text] if name == selection["best"] else text)
    return rows


def wilcoxon_table(split: dict) -> list[list[str]]:
    """Rows: p-value (mean difference vs baseline, n pairs) per method and metric on the per-case class mean."""
    tests = compare_to_baseline({n: r["cases"] for n, r in split.items()}, list(METRICS), CLASS_MEAN)
    rows = [["Method vs " + next(iter(split)), *METRICS]]
    for name, per_metric in tests.items():
        rows.append([name, *(f"{_p_value(t['p'])} (Δ {number(t['mean_difference'], 4)}, n={t['n']})"
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


#: beside every metric table: which mean is bold (metric_table)
BEST_RULE = "bold: the best mean, lowest for HD95/ASD, among the means with no undefined case"


def write_report(report_dir: str | Path) -> Path:
    """Regenerate every figure and ``report.md`` / ``report.html`` in ``report_dir`` from its results.json."""
    report_dir = Path(report_dir)
    results_path = report_dir / RESULTS_FILE
    if not results_path.is_file():
        raise SystemExit(f"{results_path} does not exist; run the benchmark first.")
    results = load_results(results_path)
    sections: list[tuple[str, object]] = []  # (heading, markdown/html rows or an image path or a paragraph)
    sections.append(("Verdict", verdict.verdict(results)))
    sections.append(("intro", _intro(results)))
    for split_name, split in results["splits"].items():
        labels = next(iter(split.values()))["labels"]
        sections.append((f"{split_name.capitalize()}: mean over classes ({_case_count(split)} cases; {BEST_RULE})",
                         metric_table(split, CLASS_MEAN)))
        if split_name == "validation" and results.get("fold_of_case"):
            sections.append(("Validation: Dice per fold (mean over classes, then over the fold's cases) and the "
                             "cross-validation mean", fold_table(split, results["fold_of_case"])))
        for class_name in labels:
            sections.append((f"{split_name.capitalize()}: {class_name} ({BEST_RULE})", metric_table(split, class_name)))
        if len(split) > 1:
            sections.append((f"{split_name.capitalize()}: paired Wilcoxon signed-rank test vs the baseline "
                             "(per-case mean over classes, two-sided)", wilcoxon_table(split)))
        if split_name == "validation" and len(split) > 1:
            sections.append(("Validation: Dice vs the baseline, paired over every fold's cases (difference, 95 % "
                             "paired bootstrap interval, Wilcoxon p)", verdict.baseline_rows(results)))
        histogram = figures.dice_histograms(split, report_dir / f"dice_histogram_{split_name}.png")
        sections.append((f"{split_name.capitalize()}: Dice histograms", histogram))
        sources = results["overlay_sources"].get(split_name)
        if sources:
            heading = f"{split_name.capitalize()}: random cases (dashed reference, solid prediction)"
            try:
                sections.append((heading, figures.overlays(sources, labels, report_dir / f"overlays_{split_name}.png")))
            except figures.FigureNotDrawn as reason:
                sections.append((heading, f"Not drawn: {reason}."))
    for network in verdict.mamba_networks(results):
        if verdict.controls_of(results, network):
            sections.append((f"Does the scan matter? {network} against its scan controls (Δ: what the scan adds)",
                             verdict.comparison_rows(results, verdict.control_pairs(results, network))))
            sections.append((f"What the scan costs: {network} and its controls", verdict.scan_cost_rows(results,
                                                                                                     network)))
    if results.get("repeats"):
        sections.append(("Seeded repeats: Dice mean ± sd over each method's repeats (mean over classes)",
                         verdict.repeat_rows(results)))
        sections.append(("Noise floor", verdict.floor_text(results)))
    if results["costs"]:
        sections.append(("Cost (at each method's own patch and batch size)", cost_table(results)))
    selection = results.get("selection")
    if selection:
        sections.append(("Model selection: nnU-Net's find_best_configuration over the compared models",
                         selection_table(selection)))
        sections.append(("Chosen", f"nnU-Net chose {selection['best']}: cross-validation Dice "
                                   f"{number(selection['dice_before_postprocessing'])} before and "
                                   f"{number(selection['dice_after_postprocessing'])} after its postprocessing."))
        sections.append(("Inference instructions (nnU-Net's inference_instructions.txt; `nnunetv2_mamba "
                         "predict-best` runs them)", Code(selection["instructions"])))
    if results.get("missing_runs") or results.get("failures"):
        sections.append(("Runs not in this report", _missing(results)))
    if results["curves"]:
        sections.append(("Runs (each run's training_setup.json)", runs_table(results)))
        sections.append(("Learning curves: validation Dice against training iterations and wall-clock time",
                         figures.learning_curves(results["curves"], report_dir / "learning_curves.png")))
        sections.append(("Training curves (nnU-Net's per-epoch log)",
                         figures.training_curves(results["curves"], report_dir / "training_curves.png")))
    sections.append(("Notes", _notes()))
    (report_dir / "report.md").write_text(_render_markdown(sections, report_dir))
    (report_dir / "report.html").write_text(_render_html(sections, report_dir))
    return report_dir / "report.md"


def _case_count(split: dict) -> int:
    return len(next(iter(split.values()))["cases"])


def runs_table(results: dict) -> list[list[str]]:
    """Rows (header first): per method and fold, the trainer run, what it trained with (its budget included) and
    where its last job ran (host, device)."""
    rows = [["Method", "Trained as", "Fold", "Budget (epochs x it, val it)", "Optimizer", "LR schedule",
             "Batch, patch", "Deep supervision, drop path", "Non-finite guard", "Atomic checkpoints",
             "torch.compile", "Ran on"]]
    for name, folds in results["curves"].items():
        for fold, log in folds.items():
            where = results.get("where", {}).get(name, {}).get(fold)
            setup = log["setup"]
            # the recipe's peak learning rate: the optimizer's own lr is the first (warm-up) step's when recorded
            settings = ", ".join([f"peak lr {setup['initial_lr']:g}"] + [
                f"{k} {v}" for k, v in setup["optimizer_settings"].items() if k != "lr"])
            rows.append([name, setup["trainer"], fold,
                         f"{setup['epochs']} x {setup['iterations_per_epoch']}, {setup['val_iterations_per_epoch']}",
                         f"{setup['optimizer']} ({settings})", setup["lr_scheduler"],
                         f"{setup['batch_size']}, {' x '.join(map(str, setup['patch_size']))}",
                         f"{'yes' if setup['deep_supervision'] else 'no'}, {_drop_path(setup)}",
                         *("yes" if setup[k] else "no" for k in ("non_finite_guard", "atomic_checkpoints",
                                                                 "torch_compile")),
                         _ran_on(where)])
    return rows


def _ran_on(where: dict | float | None) -> str:
    """"host, device (GPU)" of a job's record; "–" for a run whose record this report has not: trained before jobs
    recorded it, or by another report's jobs (null, read back as NaN)."""
    if not isinstance(where, dict) or not where:
        return "–"
    gpu = where.get("gpu")  # null, read back as NaN, on the CPU
    return f"{where['host']}, {where['device']}" + (f" ({gpu})" if isinstance(gpu, str) else "")


def _drop_path(setup: dict) -> str:
    """The run's largest stochastic-depth rate; "none" for a network without drop path (null, read back as NaN), a
    rate of 0, or a setup from before it was recorded."""
    rate = setup.get("drop_path_rate")
    return "none" if rate is None or math.isnan(rate) or rate == 0 else f"{rate:g}"


def _missing(results: dict) -> str:
    failures = results.get("failures", {})
    lines = [f"{key}: failed, log {failure['log']}" for key, failure in failures.items()]
    lines += [f"{key}: {state}" for key, state in results.get("missing_runs", {}).items()
              if key not in failures]
    return ("Each method's rows cover only its finished folds; run the benchmark again to train the rest (finished "
            "runs are kept, interrupted ones continue with --c). " + "; ".join(lines) + ".")


def _intro(results: dict) -> str:
    methods = results.get("methods", {})

    def described(name: str, trainer: str) -> str:
        method = methods.get(name)
        where = f" on {method['plans']} {method['configuration']}" if method else ""
        return f"{name} (trained as {trainer}{where})"

    trained = ", ".join(described(n, t) for n, t in results["trained_as"].items())
    cpu = "; ".join(f"{k}={v} ({CPU_SETTINGS[k][1]})" for k, v in results.get("cpu_settings", {}).items())
    return (f"Dataset {results['dataset']}, configuration {results['configuration']}, folds {results['folds']}, "
            f"each run's host and device in the Runs table. Methods: {trained}; the first is the baseline. Each "
            f"method trains on its own plans (patch and batch size in the Cost table) over the same cross-validation "
            f"splits; each run's budget (the _<epochs>ep<iterations>it of its trainer name) and training setup are in "
            f"the Runs table. Validation rows pool every fold's validation cases; ensemble rows are nnU-Net's pairwise "
            f"ensembles of the cross-validation predictions."
            + (f" On CPU the benchmark set for nnU-Net's processes: {cpu}." if cpu else ""))


def _notes() -> str:
    return ("Metrics per case and class (Dice, IoU, Accuracy, Precision, Sensitivity, Specificity; HD95 and ASD "
            "in mm with the images' spacing, medpy), mean ± std (ddof 0) over cases; 'mean over classes' averages "
            "the foreground classes per case first. Both masks empty: Dice 1, HD95/ASD 0. One empty: Dice 0, "
            "HD95/ASD undefined, left out of the means and counted as 'undef.'; in a 'mean over classes' row, "
            "'undef.' counts the cases with an undefined class (their mean is over the defined classes). Best mean "
            "in bold (lowest for HD95/ASD), chosen only among means without undefined cases. Params and FLOPs of "
            "the training network (deep supervision on) at the plans' patch size, batch 1, forward: torch's "
            "FlopCounterMode (multiply-add = 2 FLOPs) plus the selective scan's 9·B·L·D·N per scan, which the "
            "counter does not see. train s/it: median epoch wall time (nnU-Net's log) / training iterations per "
            "epoch (the run's training_setup.json; data loading and per-epoch validation included). train wall: "
            "first epoch's start to last epoch's end, mean over the method's runs. Learning "
            "curves: nnU-Net's pseudo Dice on the validation iterations of each epoch and its exponential moving "
            "average, against epochs x iterations per epoch and against summed epoch wall time. infer s/case: "
            "nnUNetv2_predict's time from its first output file (written once the model is loaded) to its last "
            "prediction, per case: preprocessing, inference and export, without start-up and model loading, on the "
            "device its prediction job ran on. Peak memory: one fwd+bwd at "
            "the plans' batch size in a fresh process (CUDA: max allocated; CPU: peak RSS incl. runtime). GFLOPs / "
            "step: GFLOPs / patch x batch size, the forward compute of one training iteration; the compute-matched "
            "baseline of each of our networks is the other method nearest to it in that (by ratio). nnU-Net CV "
            "Dice: find_best_configuration's foreground-mean Dice of the merged cross-validation predictions (its "
            "own summary.json), the number it chooses by.")


def _render_markdown(sections, report_dir: Path) -> str:
    parts = ["# Benchmark report"]
    for heading, body in sections:
        if heading == "intro":
            parts.append(body)
        elif isinstance(body, verdict.Bullets):
            parts.append(f"## {heading}\n\n" + "\n".join(f"- {line}" for line in body))
        elif isinstance(body, Code):
            parts.append(f"## {heading}\n\n```\n{body.strip()}\n```")
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
             "td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%;height:auto}"
             "pre{white-space:pre-wrap;overflow-wrap:anywhere}</style></head><body><h1>Benchmark report</h1>"]
    for heading, body in sections:
        if heading == "intro":
            parts.append(f"<p>{html.escape(body)}</p>")
        elif isinstance(body, verdict.Bullets):
            parts.append(f"<h2>{_inline(heading)}</h2><ul>" + "".join(f"<li>{_inline(line)}</li>" for line in body)
                         + "</ul>")
        elif isinstance(body, Code):
            parts.append(f"<h2>{_inline(heading)}</h2><pre>{html.escape(body.strip())}</pre>")
        elif isinstance(body, Path):
            parts.append(f"<h2>{_inline(heading)}</h2><img src='{body.relative_to(report_dir)}'>")
        elif isinstance(body, list):
            parts.append(f"<h2>{_inline(heading)}</h2>{html_table(body)}")
        else:
            parts.append(f"<h2>{_inline(heading)}</h2><p>{_inline(body)}</p>")
    return "".join(parts) + "</body></html>\n"


def _inline(text: str) -> str:
    """Markdown's `code` spans as HTML <code>, the rest escaped."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def save_results(results: dict, report_dir: Path) -> Path:
    """Write results.json (NaN as null) into ``report_dir``."""
    from nnunetv2_mamba.evaluation.folder import to_json_text

    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / RESULTS_FILE
    path.write_text(to_json_text(results))
    return path


__all__ = ["write_report", "save_results", "metric_table", "wilcoxon_table", "runs_table", "fold_table", "cost_table",
           "selection_table"]

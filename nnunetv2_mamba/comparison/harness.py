"""The benchmark: train every trainer on the same plans, splits and budget through nnU-Net, predict, score, report."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from nnunetv2_mamba.comparison.environment import CPU_SETTINGS, NnUNetPaths, resolve_device, subprocess_environment
from nnunetv2_mamba.comparison.prediction import predict_folder
from nnunetv2_mamba.comparison.report import save_results, write_report
from nnunetv2_mamba.comparison.training import PLANS, FoldRun, read_training_log, train_fold
from nnunetv2_mamba.evaluation.folder import evaluate_folder
from nnunetv2_mamba.training.budget import budget_trainer_name, split_budget_name

NNUNET_EPOCHS, NNUNET_ITERATIONS_PER_EPOCH = 1000, 250


@dataclass
class BenchmarkConfig:
    """What to compare and how; ``trainers[0]`` is the baseline. Every trainer trains for ``epochs`` x
    ``iterations_per_epoch`` (default nnU-Net's 1000 x 250) unless its name carries a budget already."""
    dataset_id: int
    trainers: list[str]
    configuration: str = "2d"
    folds: list[int] = field(default_factory=lambda: [0])
    epochs: int = NNUNET_EPOCHS
    iterations_per_epoch: int = NNUNET_ITERATIONS_PER_EPOCH
    test_images: Path | None = None
    test_labels: Path | None = None
    report_dir: Path | None = None
    device: str = "auto"
    disable_tta: bool = False

    def trained_as(self) -> dict[str, str]:
        """{name given: trainer run}: trainer X runs as ``X_<E>ep<I>it``; a name with a budget keeps its own."""
        return {name: name if split_budget_name(name) else
                budget_trainer_name(name, self.epochs, self.iterations_per_epoch) for name in self.trainers}


def run_benchmark(config: BenchmarkConfig, paths: NnUNetPaths) -> Path:
    """Train (resumably), predict, evaluate and write the report; returns the path of report.md."""
    dataset = paths.dataset_name(config.dataset_id)
    report_dir = Path(config.report_dir or paths.results / dataset / f"benchmark_{config.configuration}")
    plans_file = paths.preprocessed / dataset / f"{PLANS}.json"
    if not plans_file.is_file():
        raise SystemExit(f"{plans_file} is missing; run nnUNetv2_plan_and_preprocess -d {config.dataset_id} first.")
    if (config.test_images is None) != (config.test_labels is None):
        raise SystemExit("give --test-folder and --test-labels together (images and their reference labels).")
    device = resolve_device(config.device)
    env, cpu_settings = subprocess_environment(paths, device)
    for variable, value in cpu_settings.items():
        print(f"[benchmark] on CPU: {variable}={value} ({CPU_SETTINGS[variable][1]})", flush=True)
    trained_as = config.trained_as()
    runs = {name: [FoldRun(dataset, trainer, config.configuration, fold, paths.results) for fold in config.folds]
            for name, trainer in trained_as.items()}
    logs = report_dir / "logs"

    costs = {name: {} for name in trained_as}
    steps = [(name, run) for name, fold_runs in runs.items() for run in fold_runs]
    for name, run in tqdm(steps, desc="training (nnUNetv2_train)", unit="fold"):
        others = run.finished_with_other_budgets()
        tqdm.write(f"{run.trainer} fold {run.fold}: {run.status()} -> {run.folder}"
                   + (f" (finished with another budget, not reused: {', '.join(others)})" if others else ""))
        train_fold(run, config.dataset_id, device, env, logs / f"train_{run.trainer}_fold{run.fold}.log")
    dataset_json = json.loads((paths.preprocessed / dataset / "dataset.json").read_text())
    for name in tqdm(trained_as, desc="cost (params, FLOPs, memory)", unit="trainer"):  # same for every budget
        costs[name].update(_measure_cost(name, plans_file, paths.preprocessed / dataset / "dataset.json",
                                         config.configuration, device, env, report_dir / "costs"))

    splits = {"validation": {}}
    overlay_sources = {"validation": {"images": str(paths.raw / dataset / "imagesTr"),
                                      "references": str(paths.preprocessed / dataset / "gt_segmentations"),
                                      "predictions": {}}}
    curves = {}
    for name, fold_runs in runs.items():
        cases = {}
        for run in fold_runs:
            scored = evaluate_folder(paths.preprocessed / dataset / "gt_segmentations", run.validation_folder,
                                     dataset_json)
            cases.update(scored["cases"])
        splits["validation"][name] = _merged(scored, cases)
        overlay_sources["validation"]["predictions"][name] = [str(r.validation_folder) for r in fold_runs]
        curves[name] = {str(r.fold): read_training_log(r) for r in fold_runs}
        costs[name]["train_seconds_per_iteration"] = _mean([c["seconds_per_iteration"] for c in curves[name].values()])

    if config.test_images is not None:
        splits["test"], overlay_sources["test"] = {}, {"images": str(config.test_images),
                                                       "references": str(config.test_labels), "predictions": {}}
        for name, trainer in tqdm(trained_as.items(), desc="test prediction (nnUNetv2_predict)", unit="trainer"):
            output = report_dir / "test_predictions" / trainer
            timing = _timed_prediction(config, trainer, output, device, env, logs, report_dir / "costs")
            costs[name]["inference_seconds_per_case"] = timing["seconds_per_case"]
            splits["test"][name] = evaluate_folder(config.test_labels, output, dataset_json)
            overlay_sources["test"]["predictions"][name] = [str(output)]

    results = {"dataset": dataset, "dataset_id": config.dataset_id, "configuration": config.configuration,
               "folds": config.folds, "device": device, "trained_as": trained_as, "cpu_settings": cpu_settings,
               "splits": splits, "costs": costs, "curves": curves, "overlay_sources": overlay_sources}
    save_results(results, report_dir)
    return write_report(report_dir)


def _merged(template: dict, cases: dict) -> dict:
    """One metrics result over the cases of several folds."""
    from nnunetv2_mamba.evaluation.aggregate import aggregate

    return {**template, "prediction_dir": None, "cases": cases, "aggregate": aggregate(cases)}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _measure_cost(trainer: str, plans_file: Path, dataset_file: Path, configuration: str, device: str, env: dict,
                  cache_dir: Path) -> dict:
    """Cost of ``trainer``'s network, measured once in a fresh process and cached as JSON."""
    cache = cache_dir / f"{trainer}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    command = [sys.executable, "-m", "nnunetv2_mamba.comparison.cost", trainer, str(plans_file), str(dataset_file),
               configuration, device]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"measuring the cost of {trainer} failed:\n{result.stderr[-3000:]}")
    cost = json.loads(result.stdout.strip().splitlines()[-1])
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(cost, indent=2))
    return cost


def _timed_prediction(config: BenchmarkConfig, trainer: str, output: Path, device: str, env: dict, logs: Path,
                      cache_dir: Path) -> dict:
    """nnUNetv2_predict on the test images; its timing is cached so that a resumed benchmark keeps it."""
    cache = cache_dir / f"{trainer}_predict.json"
    timing = predict_folder(config.dataset_id, trainer, config.configuration, config.folds, config.test_images,
                            output, device, env, logs / f"predict_{trainer}.log", config.disable_tta)
    if timing["seconds"] is None and cache.is_file():
        return json.loads(cache.read_text())
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(timing, indent=2))
    return timing

"""Which training recipe makes Mamba-UNet and VM-UNet learn as fast as nnU-Net's CNN: a resumable study that trains
through the stock pipeline (``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train``, ``nnUNetv2_predict``) by way of
``nnunetv2_mamba benchmark``'s harness, at equal iteration budgets.

Stages (each resumable: rerun the same command and finished runs are reused, interrupted ones continue):
  data     synthetic data sets (cardiac phantom, thin vessels, small lesions, two channels) with held-out test
           cases, planned and preprocessed with nnU-Net's stock planner (2d);
  screen   the candidate recipes of both networks (default every one of ``recipe_trainer_names``) and nnU-Net's
           CNN at the SCREEN budget on the screen data sets, fold 0;
  final    nnU-Net's CNN and the best screened recipes of each network (or --final-recipes) at the FINAL budget
           on every data set, for each of --final-folds (default 0 and 1: another split and another random
           initialisation);
  summary  markdown tables of held-out test Dice per data set, one per final budget run (and the learning curves
           of each run, from the harness's reports), written to --summary.

Ranking: mean over the screen data sets of the test-set Dice (mean over foreground classes, mean over cases);
ties go to the earlier candidate in registry order.

    python benchmarks/recipe_study.py -o /tmp/recipe_study [--stages data screen final summary]
        [--screen-budget 10 25] [--final-budget 40 25] [--finalists 2] [--summary docs/recipe_study.md]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

DATASETS = {"cardiac": 951, "vessels": 952, "lesions": 953, "two_channel": 954}
SCREEN_DATASETS = ("cardiac", "vessels")
NETWORKS = ("MambaUNet", "VMUNet")
CNN = "nnUNetTrainer"
STAGES = ("data", "screen", "final", "summary")
COMMANDS_LOG = "commands.log"  # every invocation, for the summary
NOTES_MARKER = "<!-- written by hand below this line; the summary stage keeps it -->"
RUN_FOLDER = re.compile(r"^(?P<dataset>\w+)_(?P<epochs>\d+)x(?P<iterations>\d+)_fold(?P<fold>\d+)$")  # one comparison


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", dest="work_dir", type=Path, required=True, help="study folder (nnU-Net roots inside)")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--cases", type=int, default=40, help="training cases per data set (default 40)")
    parser.add_argument("--test-cases", type=int, default=20, help="held-out test cases (default 20)")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), help="image size (default 128 128)")
    parser.add_argument("--screen-budget", type=int, nargs=2, default=(10, 25), metavar=("EPOCHS", "ITERATIONS"),
                        help="epochs x iterations per epoch of the screen (default 10 x 25 = 250 iterations)")
    parser.add_argument("--final-budget", type=int, nargs=2, default=(40, 25), metavar=("EPOCHS", "ITERATIONS"),
                        help="epochs x iterations per epoch of the final runs (default 40 x 25 = 1000 iterations)")
    parser.add_argument("--screen-datasets", nargs="+", choices=list(DATASETS), default=list(SCREEN_DATASETS),
                        help="data sets the screen ranks on (default: cardiac vessels)")
    parser.add_argument("--candidates", nargs="+", default=None,
                        help="recipe suffixes to screen (default: every registered recipe)")
    parser.add_argument("--finalists", type=int, default=2, help="screened recipes per network in the final stage")
    parser.add_argument("--final-recipes", nargs="+", default=None,
                        help="recipe suffixes for the final stage instead of the screen's best")
    parser.add_argument("--final-folds", type=int, nargs="+", default=[0, 1],
                        help="folds of the final stage (default 0 1: another split and another initialisation)")
    parser.add_argument("--summary", type=Path, default=Path("docs/recipe_study.md"))
    return parser.parse_args(argv)


def nnunet_paths(work_dir: Path):
    from nnunetv2_mamba.comparison.workspace import NnUNetPaths

    paths = NnUNetPaths(work_dir / "raw", work_dir / "preprocessed", work_dir / "results")
    for folder in (paths.raw, paths.preprocessed, paths.results):
        folder.mkdir(parents=True, exist_ok=True)
    os.environ.update(nnUNet_raw=str(paths.raw), nnUNet_preprocessed=str(paths.preprocessed),
                      nnUNet_results=str(paths.results))
    return paths


def raw_dataset(paths, name: str) -> Path | None:
    """The nnU-Net raw folder of data set ``name`` in this study, or None before the data stage wrote it."""
    return next(paths.raw.glob(f"Dataset{DATASETS[name]:03d}_*"), None)


def prepare_data(args, paths) -> None:
    """Write each data set once and plan/preprocess it once with nnU-Net's stock planner."""
    from nnunetv2_mamba.comparison.workspace import nnunet_command, nnunet_environment
    from nnunetv2_mamba.synthetic import write_dataset

    for name in args.datasets:
        dataset_id = DATASETS[name]
        if raw_dataset(paths, name) is None:
            write_dataset(name, paths.raw, dataset_id, args.cases, tuple(args.size), seed=0,
                          num_test_cases=args.test_cases)
        if not list(paths.preprocessed.glob(f"Dataset{dataset_id:03d}_*/nnUNetPlans.json")):
            subprocess.run([nnunet_command("nnUNetv2_plan_and_preprocess"), "-d", str(dataset_id), "-c", "2d",
                            "-np", "2", "-npfp", "2"], env=nnunet_environment(paths, planning=True), check=True)


def candidate_trainers(network: str, suffixes) -> list[str]:
    from nnunetv2_mamba.training.trainers import recipe_trainer_names

    names = recipe_trainer_names(network)
    if suffixes is None:
        return names
    wanted = [f"nnUNetTrainer{network}_{suffix}" for suffix in suffixes]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise SystemExit(f"unknown recipes {unknown}; registered: {names}")
    return wanted


def run_comparison(paths, name: str, trainers: list[str], budget, fold: int, stage: str) -> dict:
    """Train (resumably) and score ``trainers`` on data set ``name`` for one fold; returns the harness's results."""
    from nnunetv2_mamba.comparison.benchmark import BenchmarkConfig, run_benchmark

    dataset_id = DATASETS[name]
    raw = raw_dataset(paths, name)
    report_dir = paths.results / "study" / stage / f"{name}_{budget[0]}x{budget[1]}_fold{fold}"  # RUN_FOLDER
    config = BenchmarkConfig(dataset_id=dataset_id, trainers=trainers, folds=[fold], epochs=budget[0],
                             iterations_per_epoch=budget[1], test_images=raw / "imagesTs",
                             test_labels=raw / "labelsTs", report_dir=report_dir, device="cpu")
    started = time.time()
    run_benchmark(config, paths)
    print(f"[study] {stage} {name} fold {fold}: {len(trainers)} trainers in {time.time() - started:.0f} s",
          flush=True)
    return json.loads((report_dir / "results.json").read_text())


def test_dice(results: dict, trainer: str) -> float:
    """Mean over test cases of the foreground-class mean Dice."""
    return results["splits"]["test"][trainer]["aggregate"]["mean"]["Dice"]["mean"]


def screen(args, paths) -> dict[str, list[tuple[str, float]]]:
    """{network: [(trainer, mean test Dice over the screen data sets)] best first}."""
    trainers = {network: candidate_trainers(network, args.candidates) for network in NETWORKS}
    every = [CNN] + [t for network in NETWORKS for t in trainers[network]]
    scores = {trainer: [] for trainer in every}
    for name in args.screen_datasets:
        results = run_comparison(paths, name, every, args.screen_budget, 0, "screen")
        for trainer in every:
            scores[trainer].append(test_dice(results, trainer))
    ranking = {network: sorted(((t, sum(scores[t]) / len(scores[t])) for t in trainers[network]),
                               key=lambda item: -item[1]) for network in NETWORKS}
    (paths.results / "study" / "screen_ranking.json").write_text(json.dumps(
        {"datasets": args.screen_datasets, "budget": args.screen_budget, "cnn": sum(scores[CNN]) / len(scores[CNN]),
         "per_dataset": scores, "ranking": ranking}, indent=2))
    return ranking


def final_trainers(args, paths) -> list[str]:
    """nnU-Net's CNN, then per network the finalists."""
    if args.final_recipes:
        chosen = {network: candidate_trainers(network, args.final_recipes) for network in NETWORKS}
    else:
        ranking = json.loads((paths.results / "study" / "screen_ranking.json").read_text())["ranking"]
        chosen = {network: [t for t, _ in ranking[network][:args.finalists]] for network in NETWORKS}
    trainers = [CNN]
    for network in NETWORKS:
        trainers += chosen[network]
    return trainers


def final(args, paths) -> None:
    trainers = final_trainers(args, paths)
    for name in args.datasets:
        for fold in args.final_folds:
            run_comparison(paths, name, trainers, args.final_budget, fold, "final")


def describe_dataset(paths, name: str) -> str:
    """``name``: its training and test case counts and image size, read from the raw data set on disk."""
    import SimpleITK as sitk

    raw = raw_dataset(paths, name)
    labels = {split: sorted((raw / f"labels{split}").glob("*.nii.gz")) for split in ("Tr", "Ts")}
    size = sitk.ReadImage(str(labels["Tr"][0])).GetSize()[:2][::-1]  # (x, y) -> rows x columns
    return f"{name} {len(labels['Tr'])} training + {len(labels['Ts'])} test cases of {size[0]}x{size[1]}"


def final_table(runs: list[tuple[str, int, Path]], budget: tuple[int, int], dataset_order) -> list[str]:
    """Markdown of one final budget: per trainer and data set each fold's test Dice ("–" for a fold it did not
    run) with their mean where there are several and Δ, the mean over its folds of its Dice minus the CNN's on the
    same fold; and the mean Δ over the data sets once a trainer has run on each. ``runs``: (data set, fold,
    results.json) of that budget."""
    table: dict[str, dict[str, dict[int, float]]] = {}
    for dataset, fold, path in runs:
        results = json.loads(path.read_text())
        for trainer in results["splits"]["test"]:
            table.setdefault(trainer, {}).setdefault(dataset, {})[fold] = test_dice(results, trainer)
    datasets = [d for d in dataset_order if any(d in row for row in table.values())]
    folds = sorted({fold for _, fold, _ in runs})
    folds_run = {d: sorted({f for row in table.values() for f in row.get(d, {})}) for d in datasets}
    epochs, iterations = budget
    lines = [f"## Final: {epochs * iterations} iterations ({epochs} x {iterations}), "
             + ("fold " if len(folds) == 1 else "folds ") + ", ".join(map(str, folds)), "",
             "Test Dice per data set, one value per fold (– where a trainer did not run that fold), their mean "
             "where there are several, and Δ: the mean over those folds of the Dice minus the CNN's on the same "
             "fold; mean Δ over all data sets, once a trainer has run on each.", "",
             "| trainer | " + " | ".join(datasets) + " | mean Δ |", "|---|" + "---|" * (len(datasets) + 1)]
    cnn = table.get(CNN, {})
    for trainer, per_dataset in table.items():
        cells, deltas = [], []
        for dataset in datasets:
            values = per_dataset.get(dataset, {})
            if not values:
                cells.append("")
                continue
            notes = [f"{sum(values.values()) / len(values):.3f}"] if len(values) > 1 else []
            paired = [values[f] - cnn[dataset][f] for f in values if f in cnn.get(dataset, {})]
            if paired and trainer != CNN:
                deltas.append(sum(paired) / len(paired))
                notes.append(f"Δ {deltas[-1]:+.3f}")
            cells.append(" / ".join(f"{values[f]:.3f}" if f in values else "–" for f in folds_run[dataset])
                         + (f" ({', '.join(notes)})" if notes else ""))
        complete = len(deltas) == len(datasets) and trainer != CNN
        cells.append(f"{sum(deltas) / len(deltas):+.3f}" if complete else "")
        lines.append(f"| {trainer} | " + " | ".join(cells) + " |")
    return lines + [""]


def summary(args, paths) -> None:
    """Markdown tables of the screen and the final stage (test Dice), with the command, machine and budgets."""
    from nnunetv2_mamba.measurement.machine import cpu_model
    study = paths.results / "study"
    log = args.work_dir / COMMANDS_LOG
    # a command run again resumed the same runs: listed once, where it first ran
    commands = list(dict.fromkeys(log.read_text().splitlines())) if log.is_file() else []
    described = [describe_dataset(paths, name) for name in args.datasets if raw_dataset(paths, name) is not None]
    lines = ["# Recipe study", "", "Commands, in order:", "", "```", *commands, "```", "",
             f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, torch {__import__('torch').__version__}, CPU training "
             "as the harness sets it up (`nnUNet_n_proc_DA=0`, `OMP_WAIT_POLICY=PASSIVE`)  ",
             "Data (read from the raw data sets): " + ("; ".join(described) or "none in this study folder")
             + "; metric: held-out test Dice (mean over foreground classes, then cases).", ""]
    ranking_file = study / "screen_ranking.json"
    if ranking_file.is_file():
        ranking = json.loads(ranking_file.read_text())
        epochs, iterations = ranking["budget"]
        lines += [f"## Screen: {epochs * iterations} iterations ({epochs} x {iterations}), fold 0, "
                  f"data sets {', '.join(ranking['datasets'])}", "",
                  "| trainer | " + " | ".join(ranking["datasets"]) + " | mean |", "|---|" + "---|" * (
                      len(ranking["datasets"]) + 1)]
        for trainer, values in ranking["per_dataset"].items():
            lines.append(f"| {trainer} | " + " | ".join(f"{v:.3f}" for v in values)
                         + f" | {sum(values) / len(values):.3f} |")
        lines.append("")
    runs_by_budget: dict[tuple[int, int], list[tuple[str, int, Path]]] = {}
    for path in sorted(study.glob("final/*/results.json")):
        found = RUN_FOLDER.match(path.parent.name)
        if found:
            budget = (int(found["epochs"]), int(found["iterations"]))
            runs_by_budget.setdefault(budget, []).append((found["dataset"], int(found["fold"]), path))
    for budget in sorted(runs_by_budget):
        lines += final_table(runs_by_budget[budget], budget, args.datasets)
    figures = [path for stage in ("screen", "final") for path in sorted(study.glob(f"{stage}/*/learning_curves.png"))]
    if figures:
        lines += ["## Learning curves", "", "Validation pseudo-Dice (nnU-Net's, and its EMA) of every run against "
                  "training iterations and wall-clock time; one figure per stage, data set and fold.", ""]
        (args.summary.parent / "figures").mkdir(parents=True, exist_ok=True)
        for path in figures:
            name = f"recipe_study_{path.parent.parent.name}_{path.parent.name}.png"
            shutil.copyfile(path, args.summary.parent / "figures" / name)
            lines += [f"![{path.parent.parent.name} {path.parent.name}](figures/{name})", ""]
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    notes = args.summary.read_text().partition(NOTES_MARKER)[2] if args.summary.is_file() else ""
    args.summary.write_text("\n".join(lines) + "\n" + NOTES_MARKER + (notes or "\n"))
    print(f"[study] wrote {args.summary}")


def main(argv=None) -> int:
    args = parse_arguments(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    with open(args.work_dir / COMMANDS_LOG, "a") as log:
        log.write(" ".join(["python benchmarks/recipe_study.py", *(sys.argv[1:] if argv is None else argv)]) + "\n")
    paths = nnunet_paths(args.work_dir.resolve())
    if "data" in args.stages:
        prepare_data(args, paths)
    if "screen" in args.stages:
        for network, ranked in screen(args, paths).items():
            print(f"[study] {network} screen ranking: " + ", ".join(f"{t} {d:.3f}" for t, d in ranked), flush=True)
    if "final" in args.stages:
        final(args, paths)
    if "summary" in args.stages:
        summary(args, paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

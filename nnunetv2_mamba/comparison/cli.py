"""``nnunetv2_mamba benchmark``: compare trainers on the same plans, splits and budget; write a report."""
from __future__ import annotations

DEFAULT_TRAINERS = ["nnUNetTrainer", "nnUNetTrainerMambaUNet", "nnUNetTrainerVMUNet"]


def add_arguments(parser) -> None:
    parser.description = (
        "Train every trainer with nnUNetv2_train on the stock nnUNetPlans (same preprocessing, patch, batch and "
        "splits for all), score nnU-Net's validation predictions (and a test folder), and write report.md/.html "
        "with the Table-1 metrics, per-class tables, Wilcoxon tests vs the first trainer, figures and costs. "
        "Resumable: finished folds (checkpoint_final.pth + validation/summary.json) of the same trainer and "
        "budget are never retrained, interrupted ones continue with --c. On CPU it sets nnUNet_n_proc_DA=0 for "
        "nnU-Net's processes (and says so). Needs nnUNet_raw/nnUNet_preprocessed/nnUNet_results set and the "
        "dataset planned and preprocessed.")
    parser.add_argument("-d", dest="dataset_id", type=int, required=True, help="dataset id")
    parser.add_argument("-c", dest="configuration", default="2d", help="configuration (default 2d)")
    parser.add_argument("--trainers", nargs="+", default=DEFAULT_TRAINERS,
                        help="trainers to compare; the first is the baseline (default: %(default)s)")
    parser.add_argument("--folds", nargs="+", type=int, default=[0], help="folds (default 0)")
    parser.add_argument("--epochs", type=int, default=1000,
                        help="training epochs for every trainer (default nnU-Net's 1000). Trainer X trains as "
                             "X_<epochs>ep<iterations>it (e.g. nnUNetTrainerMambaUNet_8ep25it), a class synthesised "
                             "for any trainer, with max(1, round(iterations / 5)) validation iterations per epoch; "
                             "the budget is part of its results folder, so another budget trains another run. A "
                             "trainer given with a budget in its name keeps it")
    parser.add_argument("--iterations-per-epoch", type=int, default=250,
                        help="training iterations per epoch (default nnU-Net's 250)")
    parser.add_argument("--test-folder", default=None, help="images to predict (imagesTs layout)")
    parser.add_argument("--test-labels", default=None, help="reference segmentations of --test-folder")
    parser.add_argument("--disable-tta", action="store_true", help="no mirroring when predicting --test-folder")
    parser.add_argument("--report-only", action="store_true",
                        help="only regenerate report and figures from REPORT_DIR/results.json")
    parser.add_argument("-o", dest="report_dir", default=None,
                        help="report folder (default nnUNet_results/DatasetXXX/benchmark_CONFIG)")
    parser.add_argument("-device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: cuda when available, else cpu")


def run(args) -> int:
    from pathlib import Path

    from nnunetv2_mamba.comparison.environment import NnUNetPaths
    from nnunetv2_mamba.comparison.harness import BenchmarkConfig, run_benchmark
    from nnunetv2_mamba.comparison.report import write_report
    from nnunetv2_mamba.training.budget import BudgetNameError

    if args.report_only:
        if args.report_dir is None:
            paths = NnUNetPaths.from_environment()
            args.report_dir = paths.results / paths.dataset_name(args.dataset_id) / f"benchmark_{args.configuration}"
        print(f"report: {write_report(args.report_dir)}")
        return 0
    config = BenchmarkConfig(
        dataset_id=args.dataset_id, trainers=args.trainers, configuration=args.configuration, folds=args.folds,
        epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch,
        test_images=Path(args.test_folder) if args.test_folder else None,
        test_labels=Path(args.test_labels) if args.test_labels else None,
        report_dir=Path(args.report_dir) if args.report_dir else None, device=args.device,
        disable_tta=args.disable_tta)
    try:
        print(f"report: {run_benchmark(config, NnUNetPaths.from_environment())}")
    except BudgetNameError as error:
        raise SystemExit(str(error)) from None
    return 0

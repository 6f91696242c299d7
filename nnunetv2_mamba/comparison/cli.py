"""``nnunetv2_mamba benchmark``: compare methods, each on its own plans, over nnU-Net's cross-validation; ensemble
and select with nnU-Net's own code; write a report."""
from __future__ import annotations

from nnunetv2_mamba.comparison.execution.settings import add_executor_arguments

FOLDS_ALL = "all"


def folds_argument(values: list[str]) -> list[int]:
    """``--folds``: fold numbers, or ``all`` for nnU-Net's five."""
    from nnunetv2_mamba.comparison.benchmark import ALL_FOLDS

    if values == [FOLDS_ALL]:
        return list(ALL_FOLDS)
    try:
        return sorted({int(v) for v in values})
    except ValueError:
        raise SystemExit(f"--folds {' '.join(values)}: give fold numbers (e.g. 0 1) or 'all'.") from None


def add_arguments(parser) -> None:
    from nnunetv2_mamba.comparison.methods import MAMBA_SPECS, SPEC_FORMS

    parser.description = (
        f"Train every method with nnUNetv2_train on its own plans (a method is {SPEC_FORMS}, nnU-Net's "
        "results-folder name; plain TRAINER means nnUNetPlans), score nnU-Net's "
        "cross-validation predictions (and a test folder), and write report.md/.html: a verdict first (the best "
        "method, nnU-Net's choice, each Mamba network against the baseline and its scan controls, marked where a "
        "difference is within the noise floor), Table-1 metrics, per-class and per-fold tables, Wilcoxon tests and "
        "paired bootstrap intervals vs the first method over every fold's cases, costs, figures. Missing "
        "plans are made with their planner (nnU-Net's for nnUNetPlans and the ResEnc presets, ours for "
        "nnUNetMambaUNetPlans / nnUNetVMUNetPlans), preprocessed data reused where the data identifier is the "
        "same. Resumable: finished folds (checkpoint_final.pth + validation/summary.json) of the same trainer, "
        "plans and budget are never retrained, interrupted ones continue with --c. Every command that costs compute "
        "is a job that decides its device where it runs; a job on the CPU sets nnUNet_n_proc_DA=0 for its nnU-Net "
        "command (and says so in its log). Needs nnUNet_raw/nnUNet_preprocessed/"
        "nnUNet_results set and the dataset planned and preprocessed (nnUNetv2_plan_and_preprocess).")
    parser.add_argument("-d", dest="dataset_id", type=int, required=True, help="dataset id")
    parser.add_argument("-c", dest="configuration", default="2d",
                        help="configuration of every method that does not name its own (default 2d)")
    parser.add_argument("--trainers", nargs="+", default=None, metavar="METHOD",
                        help=f"methods to compare, the first is the baseline: {SPEC_FORMS} (plain TRAINER: on "
                             "nnUNetPlans); a CONFIG <base>_bs<N> is <base> at batch size N "
                             "(inherits_from). Default: nnU-Net's recommended comparison, nnUNetTrainer on "
                             "nnUNetPlans, nnUNetTrainer on the ResEnc preset's plans (--baseline-preset), "
                             f"{', '.join(MAMBA_SPECS)}")
    parser.add_argument("--baseline-preset", default="M",
                        help="nnU-Net's ResEnc preset of the default comparison: M, L or XL (plans "
                             "nnUNetResEncUNet{M,L,XL}Plans, planned for 8/24/40 GB of GPU memory; default M)")
    parser.add_argument("--baseline-batch-size", type=int, default=None, metavar="N",
                        help="train the default ResEnc baseline at batch size N (configuration <-c>_bsN, "
                             "inherits_from <-c> in its plans): the way to run a preset planned for a GPU on a "
                             "smaller device, recorded in its name and the report")
    parser.add_argument("--folds", nargs="+", default=["0"],
                        help="folds to train and cross-validate over, or 'all' (0-4, the way to benchmark; "
                             "default 0)")
    parser.add_argument("--ensembles", action="store_true",
                        help="train with --npz (runs trained without it only validate again), run nnU-Net's "
                             "find_best_configuration over the compared models, add every pairwise ensemble and "
                             "nnU-Net's choice to the report with its inference instructions, and predict the "
                             "test folder with that choice (predict, ensemble, postprocess)")
    parser.add_argument("--epochs", type=int, default=1000,
                        help="training epochs for every trainer (default nnU-Net's 1000). Trainer X trains as "
                             "X_<epochs>ep<iterations>it (e.g. nnUNetTrainerMambaUNet_8ep25it), a class synthesised "
                             "for any trainer, with max(1, round(iterations / 5)) validation iterations per epoch; "
                             "the budget is part of its results folder, so another budget trains another run. A "
                             "trainer given with a budget in its name keeps it")
    parser.add_argument("--iterations-per-epoch", type=int, default=250,
                        help="training iterations per epoch (default nnU-Net's 250)")
    parser.add_argument("--controls", action="store_true",
                        help="add each Mamba-UNet / VM-UNet method's scan controls, TRAINER_NoScan (scan replaced "
                             "by identity) and TRAINER_OneWay (one scan direction), on its plans and budget; the "
                             "report compares each network with its controls (Dice difference, 95 %% paired "
                             "bootstrap interval, Wilcoxon p) and shows what the scan costs")
    parser.add_argument("--repeats", type=int, default=None, metavar="N",
                        help="train every (method, fold) N times with seeds 0..N-1 (trainer X_<E>ep<I>it_seed<K>, "
                             "each seed its own results folder); the report gives each method's mean ± sd over "
                             "its repeats and the baseline's repeat-to-repeat difference as the noise floor, and "
                             "marks every difference inside it. Report rows, nnU-Net's selection and test "
                             "predictions use seed 0's runs. Without it runs keep their unseeded names")
    parser.add_argument("--test-folder", default=None, help="images to predict (imagesTs layout)")
    parser.add_argument("--test-labels", default=None, help="reference segmentations of --test-folder")
    parser.add_argument("--disable-tta", action="store_true", help="no mirroring when predicting --test-folder")
    parser.add_argument("--report-only", action="store_true",
                        help="plan, train and predict nothing: score what has finished (runs, nnU-Net's selection, "
                             "test predictions), list the runs that have not with their job state, write the report "
                             "(give the benchmark's own arguments: they name its runs)")
    parser.add_argument("-o", dest="report_dir", default=None,
                        help="report folder (default nnUNet_results/DatasetXXX/benchmark_CONFIG)")
    parser.add_argument("-device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="nnU-Net's -device, decided by each job where it runs: auto is cuda when the job has a "
                             "GPU (--slurm-gpus, or this machine's for inline/local), else cpu; cuda without a GPU "
                             "fails the job with the way out")
    add_executor_arguments(parser)


def run(args) -> int:
    from pathlib import Path

    from nnunetv2_mamba.comparison.workspace import NnUNetPaths
    from nnunetv2_mamba.comparison.execution import ExecutorError, SettingsError
    from nnunetv2_mamba.comparison.execution.settings import settings_from_arguments
    from nnunetv2_mamba.comparison.benchmark import BenchmarkConfig, run_benchmark
    from nnunetv2_mamba.comparison.methods import MethodError
    from nnunetv2_mamba.comparison.plans import PlansError
    from nnunetv2_mamba.training.budget import TrainerNameError

    try:
        config = BenchmarkConfig(
            dataset_id=args.dataset_id, trainers=args.trainers, configuration=args.configuration,
            folds=folds_argument(args.folds), epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch,
            baseline_preset=args.baseline_preset, baseline_batch_size=args.baseline_batch_size,
            ensembles=args.ensembles, test_images=Path(args.test_folder) if args.test_folder else None,
            test_labels=Path(args.test_labels) if args.test_labels else None,
            report_dir=Path(args.report_dir) if args.report_dir else None, device=args.device,
            disable_tta=args.disable_tta, executor=args.executor, executor_settings=settings_from_arguments(args),
            wait=not args.no_wait, report_only=args.report_only, controls=args.controls, repeats=args.repeats)
        report = run_benchmark(config, NnUNetPaths.from_environment())
    except (TrainerNameError, MethodError, PlansError, ExecutorError, SettingsError) as error:
        raise SystemExit(str(error)) from None
    if report is not None:
        print(f"report: {report}")
    return 0

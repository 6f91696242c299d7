"""``nnunetv2_mamba demo [--quick] [-o WORK_DIR]``: the whole job on the synthetic cardiac phantom.

Writes the phantom into WORK_DIR/nnUNet_raw, runs nnUNetv2_plan_and_preprocess (-c 2d -np 2 -npfp 2), then the
benchmark (nnU-Net's CNN baseline, Mamba-UNet, VM-UNet on the same plans, splits and budget; test-set prediction)
and prints where the report is. nnU-Net's folder variables are set for the subprocesses only.
"""
from __future__ import annotations

from dataclasses import dataclass

DATASET_ID = 900


@dataclass(frozen=True)
class DemoSetting:
    """Size of a demo run: phantom cases, image size, trainers (baseline first) and their shared budget."""
    cases: int
    test_cases: int
    image_size: tuple[int, int]
    trainers: tuple[str, ...]
    epochs: int
    iterations_per_epoch: int
    disable_tta: bool


#: the paper-size networks at a budget that fits about 20 minutes on 2 CPU cores (far from converged there)
FULL = DemoSetting(cases=20, test_cases=5, image_size=(128, 128),
                   trainers=("nnUNetTrainer", "nnUNetTrainerMambaUNet", "nnUNetTrainerVMUNet"),
                   epochs=8, iterations_per_epoch=25, disable_tta=True)
#: ~3 minutes on 2 cores: few small cases, one epoch of two iterations, narrow Mamba networks (``_Tiny``)
QUICK = DemoSetting(cases=5, test_cases=2, image_size=(64, 64),
                    trainers=("nnUNetTrainer", "nnUNetTrainerMambaUNet_Tiny", "nnUNetTrainerVMUNet_Tiny"),
                    epochs=1, iterations_per_epoch=2, disable_tta=True)


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="smoke run (~3-4 min on 2 CPU cores): 5 cases of 64x64, 1 epoch x 2 iterations, "
                             "narrow Mamba networks")
    parser.add_argument("-o", dest="work_dir", default="nnunet_work",
                        help="work folder for nnUNet_raw/_preprocessed/_results (default ./nnunet_work)")
    parser.add_argument("-device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: cuda when available, else cpu")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")


def run(args) -> int:
    import subprocess
    import time
    from pathlib import Path

    from nnunetv2_mamba.comparison.workspace import NnUNetPaths, nnunet_command, nnunet_environment
    from nnunetv2_mamba.comparison.benchmark import BenchmarkConfig, run_benchmark
    from nnunetv2_mamba.synthetic import write_phantom_dataset

    setting = QUICK if args.quick else FULL
    work = Path(args.work_dir).resolve()
    paths = NnUNetPaths(work / "nnUNet_raw", work / "nnUNet_preprocessed", work / "nnUNet_results")
    start = time.perf_counter()
    raw = write_phantom_dataset(paths.raw, DATASET_ID, setting.cases, setting.image_size, args.seed,
                                setting.test_cases)
    print(f"[demo] phantom written to {raw}", flush=True)
    plans = paths.preprocessed / raw.name / "nnUNetPlans.json"
    if not (paths.preprocessed / raw.name / "nnUNetPlans_2d").is_dir() or not plans.is_file():
        print("[demo] nnUNetv2_plan_and_preprocess -c 2d", flush=True)
        log = work / "plan_and_preprocess.log"
        with log.open("w") as handle:
            result = subprocess.run([nnunet_command("nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", "2d",
                                     "-np", "2", "-npfp", "2", "--verify_dataset_integrity"],
                                    env=nnunet_environment(paths, planning=True), stdout=handle, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise SystemExit(f"nnUNetv2_plan_and_preprocess failed; see {log}")
    config = BenchmarkConfig(
        dataset_id=DATASET_ID, trainers=list(setting.trainers), folds=[0], epochs=setting.epochs,
        iterations_per_epoch=setting.iterations_per_epoch,
        test_images=raw / "imagesTs", test_labels=raw / "labelsTs", report_dir=work / "report", device=args.device,
        disable_tta=setting.disable_tta)
    report = run_benchmark(config, paths)
    minutes = (time.perf_counter() - start) / 60
    print(f"[demo] done in {minutes:.1f} min (where each run ran: the report's Runs table). Report: {report} (and {report.with_suffix('.html')})")
    return 0

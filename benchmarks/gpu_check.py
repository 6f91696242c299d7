"""One-shot GPU verification of nnunetv2_mamba: every check in one command, one markdown table and a JSON file.

    python benchmarks/gpu_check.py [--quick] [--output gpu_check.md] [--only CHECK ...] [--budget 450]
    python benchmarks/gpu_check.py --dry-run      # the same code on the CPU, tiny shapes, Triton interpreted

Checks, in order (each in its own process; a failing case is a FAIL row and the run goes on):
  environment  the GPU, driver, CUDA, library versions, CPU (a missing GPU stops the run)
  backends     `nnunetv2_mamba doctor`, the auto backend's choice, each kernel backend's smoke test
  scan         every available scan backend (cuda if mamba-ssm's kernel imports, triton, torch, others the
               project adds) against the torch scan in fp32 at the SS2D shapes of the 2d networks (B=2, d = 4 x 2C
               for C = 96..768, L = (patch/4)^2 .. (patch/32)^2), fp32/bf16/fp16, forward and backward, with
               mamba-ssm's test tolerances; fwd+bwd time
  cross_scan   the fused Triton cross scan / merge against the torch functions, and their time
  ss2d         one SS2D layer per kernel backend against the torch scan's path
  nets_2d      MambaUNet, VMUNet and nnU-Net's PlainConvUNet: AMP training step (it/s, peak memory, finite loss)
               and inference per image at the 2d plan (default patch 224x192, batch 12: nnU-Net's 2d plan scale
               for a cardiac cine MRI set like ACDC, both edges multiples of 32), with the auto backend; MambaUNet
               also with every other backend (not with --quick)
  triton_backward  the Triton backward against the torch scan at the training scans' shapes (batch, N = 16, 2d
               stages and a 3d one); its memory beside the planner's workspace term
  compile      nnUNet_compile=t: nnUNetv2_train, a training step and nnUNetPredictor against the same eager
               (the dry run: the step only, with the aot_eager backend)
  ddp          with 2+ GPUs: `nnUNetv2_train -num_gpus 2` of a tiny trainer with a NaN forced on rank 1 must finish
               with both ranks skipping the same steps and ending equal (a dry run: one CPU process)

Expected runtime (estimated, not yet measured on a GPU): about 3-5 minutes on an H200-class GPU, most of it Triton
compiling its kernels once per dtype and shape class and the torch scan's timings; --quick about 2 minutes; the
checks run last, triton_backward and compile (two trainings, Inductor compiling a network twice), add an estimated
3-6 minutes: give them --budget or run them alone with --only. The
run stays within --budget seconds (default 420): a check that would start later is reported SKIP, and each
check's process is stopped at its share. With 2+ GPUs the ddp check (planning a tiny data set, then a short
two-process training) adds about a minute, estimated. The dry run takes about 2.5 minutes of CPU time.
Exit status: 0 if no row FAILed, 1 otherwise (after the whole run), 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCHMARKS.parent), str(BENCHMARKS)]  # this checkout's nnunetv2_mamba, then common and gpu_checks
MIN_CHECK_SECONDS = 15  # a check is not started with less of the budget left


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--quick", action="store_true",
                        help="fewer shapes (encoder stages 0 and 3) and repetitions; Mamba training with auto only")
    parser.add_argument("--dry-run", action="store_true",
                        help="run the same checks on the CPU with tiny shapes, Triton under TRITON_INTERPRET=1")
    parser.add_argument("--output", type=Path, default=Path("gpu_check.md"),
                        help="markdown report (default gpu_check.md); the raw numbers go beside it as .json")
    parser.add_argument("--only", nargs="+", metavar="CHECK",
                        help="run only these checks (listed below; environment always runs first)")
    parser.add_argument("--budget", type=float, default=420.0,
                        help="wall-clock seconds the whole run may take (default 420)")
    parser.add_argument("--patch", type=int, nargs=2, default=(224, 192), metavar=("H", "W"),
                        help="2d training patch, multiples of 32 (default 224 192; a dry run uses 32 32)")
    parser.add_argument("--batch", type=int, default=12, help="2d training batch (default 12; a dry run uses 2)")
    parser.add_argument("--inject-failure", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--inject-crash", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(edge <= 0 or edge % 32 for edge in args.patch):
        parser.error(f"--patch edges must be positive multiples of 32 (the Mamba networks' divisor), got {args.patch}")
    if args.batch < 1 or args.budget <= 0:
        parser.error("--batch and --budget must be positive")
    return args


def print_row(row) -> None:
    print(f"{row.status} {row.check}: {row.case} | {row.result} | {row.time}", flush=True)


def main(argv=None) -> int:
    args = parse_arguments(argv)
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton: the kernels then run on CPU tensors
    # this process forks one child per check and must never initialise CUDA itself: should anything here ask
    # torch.cuda.is_available(), let it ask NVML instead of the CUDA driver
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    from gpu_checks.all_checks import CHECKS  # noqa: E402  (imports torch and the project)
    from gpu_checks.isolation import run_isolated
    from gpu_checks.measure import allow_kernels_on_cpu
    from gpu_checks.registry import FAIL, SKIP, WHOLE_CHECK, Row
    from gpu_checks.report import write_reports
    from gpu_checks.settings import settings_for

    unknown = sorted(set(args.only or ()) - set(CHECKS))
    if unknown:
        print(f"unknown check(s) {', '.join(unknown)}; the checks are {', '.join(CHECKS)}", file=sys.stderr)
        return 2
    settings = settings_for(dry_run=args.dry_run, quick=args.quick, patch=tuple(args.patch), batch=args.batch,
                            inject_failure=args.inject_failure, inject_crash=args.inject_crash)
    if args.dry_run:
        allow_kernels_on_cpu()
    command = "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv)
    selected = [c for c in CHECKS.values() if not args.only or c.name in args.only or c.required]
    started, rows, machine, stop_reason, check_seconds = time.monotonic(), [], None, None, {}
    for check in selected:
        remaining = args.budget - (time.monotonic() - started)
        if stop_reason is None and remaining < MIN_CHECK_SECONDS:
            stop_reason = f"not run: the time budget of {args.budget:.0f} s was spent"
        if stop_reason:
            rows.append(Row(check.name, WHOLE_CHECK, SKIP, stop_reason))
            print_row(rows[-1])
            continue
        print(f"--- {check.name}: {check.description}", flush=True)
        check_started = time.monotonic()
        check_rows = run_isolated(check, settings, min(check.timeout_s, remaining), print_row)
        check_seconds[check.name] = time.monotonic() - check_started
        print(f"--- {check.name} took {check_seconds[check.name]:.0f} s", flush=True)
        rows += check_rows
        machine = machine or next((r.data["machine"] for r in check_rows if "machine" in r.data), None)
        if check.required and any(row.status == FAIL for row in check_rows):
            stop_reason = f"not run: the {check.name} check failed"
        write_reports(args.output, rows, machine, settings, command, time.monotonic() - started, check_seconds)
    text = write_reports(args.output, rows, machine, settings, command, time.monotonic() - started, check_seconds)
    print("\n" + text)
    print(f"report: {args.output} and {args.output.with_suffix('.json')}")
    return 1 if any(row.status == FAIL for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

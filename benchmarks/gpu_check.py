"""One-shot GPU verification of nnunetv2_mamba: every check in one command, one markdown table and a JSON file.

    python benchmarks/gpu_check.py [--quick] [--output gpu_check.md] [--only CHECK ...] [--budget 450]
    python benchmarks/gpu_check.py --dry-run      # the same code on the CPU, tiny shapes, Triton interpreted

The checks are the pytest tests marked gpu, one file per check (tests/gpu/test_gpu_<check>.py; `pytest -m gpu` runs
them without timings and skips them without CUDA). This command runs each check's file in its own pytest process (a
fork of a warm interpreter that has imported torch once, the inline executor's; pytest-timeout bounds each test),
times the cases, and collects one row per case (benchmarks/gpu_check_rows.py).
Checks, in order (a failing case is a FAIL row and the run goes on):
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
  nets_3d      the same networks in 3D (SS3D) at a 64^3 patch, batch 2
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
two-process training) adds about a minute, estimated. The dry run takes about 3 minutes of CPU time.
Exit status: 0 if no row FAILed, 1 otherwise (after the whole run), 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpu_check_report import FAIL, SKIP, WHOLE_CHECK, Row, print_row, write_reports
from nnunetv2_mamba.warm.interpreter import WarmInterpreter

BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent
GPU_TESTS = REPOSITORY / "tests" / "gpu"
#: check -> (what it checks, the most seconds its process may take); report order
CHECKS = {
    "environment": ("the machine, and whether the device under test is visible", 60),
    "backends": ("nnunetv2_mamba doctor, the auto backend's choice, each kernel backend's smoke test", 240),
    "scan": ("every scan backend against the torch scan in fp32 at the SS2D shapes: errors, fwd+bwd time", 200),
    "cross_scan": ("fused Triton cross scan / merge against the torch functions: equality, time", 90),
    "ss2d": ("an SS2D layer with each kernel backend against the torch scan's path: fp32 errors, time", 120),
    "nets_2d": ("MambaUNet, VMUNet, PlainConvUNet at the 2d plan: AMP training step, inference per image", 300),
    "nets_3d": ("MambaUNet, VMUNet (SS3D, K = 6) and nnU-Net's 3d PlainConvUNet at a 64^3 patch, batch 2: AMP "
                "training step, inference per patch", 240),
    "triton_backward": ("the Triton scan's backward against the torch scan at the training scans' shapes, and its "
                        "workspace against the planner's", 180),
    "compile": ("nnUNet_compile=t: nnUNetv2_train, a training step and nnUNetPredictor against eager", 420),
    "ddp": ("nnUNetv2_train -num_gpus 2 with a NaN forced on one rank: it finishes, both ranks skip the same steps "
            "and end equal (needs 2+ GPUs)", 540),
}
INTERPRETER = WarmInterpreter()  # starts the checks' processes
REQUIRED = "environment"  # a FAIL here stops the run: the later checks could not mean anything
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


def check_environment(args, rows_file: Path) -> dict:
    """The environment of a check's pytest process: the mode the tests read, where the rows go, this checkout and
    the row plugin importable, Triton interpreted in a dry run."""
    env = {**os.environ, "NNUNETV2_MAMBA_GPU_CHECK": json.dumps(
               {"dry_run": args.dry_run, "quick": args.quick, "patch": list(args.patch), "batch": args.batch}),
           "GPU_CHECK_ROWS": str(rows_file), "GPU_CHECK_INJECT_CRASH": json.dumps(args.inject_crash),
           "NNUNETV2_MAMBA_GPU_CHECK_INJECT_FAILURE": json.dumps(args.inject_failure),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), str(BENCHMARKS),
                                                       os.environ.get("PYTHONPATH")]))}
    if args.dry_run:
        env["TRITON_INTERPRET"] = "1"  # the Triton kernels then run on CPU tensors
    return env


def death(exit_code: int) -> str:
    return f"killed by {signal.Signals(-exit_code).name}" if exit_code < 0 else f"exit code {exit_code}"


def run_check(test_file: Path, check: str, env: dict, timeout_s: float) -> list[Row]:
    """The rows of one check file run by pytest in its own process, stopped after ``timeout_s``; a process that
    dies or runs out of time keeps the rows it wrote and adds a FAIL row saying what happened."""
    rows_file = Path(env["GPU_CHECK_ROWS"])
    rows_file.write_text("")
    command = [sys.executable, "-m", "pytest", str(test_file), "-m", "gpu", "-p", "gpu_check_rows", "-q", "-rN",
               "--no-header", "--disable-warnings", "-p", "no:cacheprovider", "-o", "addopts=",
               "--rootdir", str(REPOSITORY)]
    process = INTERPRETER.popen(command, env=env, cwd=REPOSITORY, start_new_session=True)
    try:
        process.wait(timeout_s)
        problem = None
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        problem = f"stopped after its time limit of {timeout_s:.0f} s"
    rows = [Row(**json.loads(line)) for line in rows_file.read_text().splitlines()]
    stopped_early = process.returncode == 2 and any(row.case == WHOLE_CHECK for row in rows)  # broken CUDA
    if problem is None and process.returncode not in (0, 1, 5) and not stopped_early:  # 1: a test failed
        problem = f"its process died ({death(process.returncode)})"
    if problem:
        rows.append(Row(check, WHOLE_CHECK, FAIL, f"{problem} after {len(rows)} row(s); see the output above"))
        print_row(rows[-1])
    return rows


def main(argv=None) -> int:
    args = parse_arguments(argv)
    unknown = sorted(set(args.only or ()) - set(CHECKS))
    if unknown:
        print(f"unknown check(s) {', '.join(unknown)}; the checks are {', '.join(CHECKS)}", file=sys.stderr)
        return 2
    command = "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv)
    selected = [name for name in CHECKS if not args.only or name in args.only or name == REQUIRED]
    started, rows, machine, settings, stop_reason, check_seconds = time.monotonic(), [], None, {}, None, {}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as folder:
        env = check_environment(args, Path(folder) / "rows.jsonl")
        for check in selected:
            remaining = args.budget - (time.monotonic() - started)
            if stop_reason is None and remaining < MIN_CHECK_SECONDS:
                stop_reason = f"not run: the time budget of {args.budget:.0f} s was spent"
            if stop_reason:
                rows.append(Row(check, WHOLE_CHECK, SKIP, stop_reason))
                print_row(rows[-1])
                continue
            description, limit_s = CHECKS[check]
            print(f"--- {check}: {description}", flush=True)
            check_started = time.monotonic()
            check_rows = run_check(GPU_TESTS / f"test_gpu_{check}.py", check, env, min(limit_s, remaining))
            check_seconds[check] = time.monotonic() - check_started
            print(f"--- {check} took {check_seconds[check]:.0f} s", flush=True)
            rows += check_rows
            found = next((r.data for r in check_rows if "machine" in r.data), None)
            if found:
                machine, settings = found["machine"], found.get("settings", {})
            if check == REQUIRED and any(row.status == FAIL for row in check_rows):
                stop_reason = f"not run: the {check} check failed"
            write_reports(args.output, rows, machine, settings, command, time.monotonic() - started, check_seconds)
    text = write_reports(args.output, rows, machine, settings, command, time.monotonic() - started, check_seconds)
    print("\n" + text)
    print(f"report: {args.output} and {args.output.with_suffix('.json')}")
    return 1 if any(row.status == FAIL for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

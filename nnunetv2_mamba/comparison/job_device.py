"""The device of a job, decided where the job runs: ``-device`` resolved on the job's own machine, the CPU
settings applied for the device it gets there, the ResEnc "fits the device" check made against it; then the
command runs with ``{device}`` replaced by that device. Nothing of the submitting host's hardware enters a job.

Run as ``python -m nnunetv2_mamba.comparison.job_device --device auto --gpus 1 --where WHERE.json
[--check-plans METHOD PLANS_JSON STOCK_PLANS_JSON] -- COMMAND...`` (``wrap`` builds it). ``--gpus``: the GPUs the
job asked its scheduler for. A job that asked for a GPU, or was given ``-device cuda``, and sees none fails with
one clear error ("no GPU in this job") and the way out; ``auto`` without a GPU asked for runs on the CPU.
``--where`` gets {host, device, gpu, gpus_asked, cpu_settings, error}: where the job ran, for the report.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import Sequence, TextIO

from nnunetv2_mamba.comparison.methods import Method
from nnunetv2_mamba.comparison.plans import PlansError, check_runs_on_device
from nnunetv2_mamba.comparison.workspace import CPU_SETTINGS, cpu_settings

DEVICE = "{device}"  # in a command: replaced by the device the job runs on
DEVICES = ("auto", "cpu", "cuda")  # nnU-Net's -device choices, auto resolved in the job


class NoGPUError(RuntimeError):
    """The job needs a GPU it does not have; the message says what to do."""


def where_file(log_file: Path) -> Path:
    """Where a job records where it ran: beside its log."""
    return log_file.with_name(f"{log_file.stem}.where.json")


def wrap(command: Sequence[str], device: str, gpus: int, where: Path,
         check_plans: tuple[str, Path, Path] | None = None) -> tuple[str, ...]:
    """``command`` (with ``DEVICE`` where its device goes) as a job that decides its device where it runs."""
    check = ("--check-plans", check_plans[0], str(check_plans[1]), str(check_plans[2])) if check_plans else ()
    return (sys.executable, "-m", __name__, "--device", device, "--gpus", str(gpus), "--where", str(where), *check,
            "--", *command)


def decide_device(requested: str, gpus: int, cuda_available: bool) -> str:
    """The device a job runs on: ``cpu`` when asked; CUDA when asked for (``cuda``) or when the job has GPUs
    (``auto``), ``NoGPUError`` when it cannot see one; ``auto`` without GPUs: the CPU."""
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or gpus > 0:
        if not cuda_available:
            asked = f"asked for {gpus} GPU(s)" if gpus else "was given -device cuda"
            raise NoGPUError(
                f"no GPU in this job: it {asked} but torch sees no CUDA device on {socket.gethostname()} "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}, "
                f"SLURM_GPUS_ON_NODE={os.environ.get('SLURM_GPUS_ON_NODE', 'unset')}). Run the jobs where a GPU is "
                "(a GPU partition: --slurm-partition), check the node's driver and that torch is a CUDA build "
                "(torch.version.cuda), or run on the CPU on purpose with -device cpu.")
        return "cuda"
    return "cpu"


def wraps(command: Sequence[str]) -> bool:
    """Whether ``command`` is a job made by :func:`wrap`."""
    return tuple(command[1:3]) == ("-m", __name__)


def prepare(argv: Sequence[str], env: dict[str, str], out: TextIO,
            err: TextIO) -> tuple[list[str], dict[str, str]] | int:
    """What a job made by :func:`wrap` (``argv``: the arguments after ``-m job_device``) runs here, with ``env``
    where it starts: its command with the device it gets here and the environment for that device, or the exit
    code 3 where it cannot run here. Records where it ran and prints what it decided to ``out`` (why not: ``err``)."""
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("--device", choices=DEVICES, required=True)
    parser.add_argument("--gpus", type=int, required=True)
    parser.add_argument("--where", type=Path, required=True)
    parser.add_argument("--check-plans", nargs=3, metavar=("METHOD", "PLANS_JSON", "STOCK_PLANS_JSON"))
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(list(argv))
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    where = {"host": socket.gethostname(), "gpus_asked": args.gpus, "device": None, "gpu": None,
             "cpu_settings": {}, "error": None}
    env = dict(env)
    try:
        import torch

        device = decide_device(args.device, args.gpus, torch.cuda.is_available())
        where["device"] = device
        if device == "cuda":
            where["gpu"] = torch.cuda.get_device_name(0)
        else:
            where["cpu_settings"] = cpu_settings(env)
            env.update(where["cpu_settings"])
            for variable, value in where["cpu_settings"].items():
                print(f"[job] on CPU: {variable}={value} ({CPU_SETTINGS[variable][1]})", file=out, flush=True)
        if args.check_plans:
            spec, plans, stock = args.check_plans
            check_runs_on_device(Method.parse(spec, ""), Path(plans), Path(stock), device)
    except (NoGPUError, PlansError) as error:
        where["error"] = f"{type(error).__name__}: {error}"
        _record(args.where, where)
        print(f"[job] on {where['host']}: {error}", file=err, flush=True)
        return 3
    _record(args.where, where)
    print(f"[job] on {where['host']}, device {device}" + (f" ({where['gpu']})" if where["gpu"] else ""), file=out,
          flush=True)
    return [device if part == DEVICE else part for part in command], env


def main(argv: list[str]) -> int:
    """Prepare the job (:func:`prepare`), then become its command."""
    prepared = prepare(argv, dict(os.environ), sys.stdout, sys.stderr)
    if isinstance(prepared, int):
        return prepared
    command, env = prepared
    os.execvpe(command[0], command, env)


def _record(path: Path, where: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(where, indent=1))


def read_where(path: Path) -> dict | None:
    """What ``--where`` recorded for a job (None before it ran)."""
    return json.loads(path.read_text()) if path.is_file() else None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Checks ``environment`` (the machine, and that the device under test is there) and ``backends`` (the doctor's
report, the auto choice, each kernel backend's smoke test)."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from nnunetv2_mamba.ops import backends
from nnunetv2_mamba.ops.backends import BACKENDS, smoke_test_failure

from common import cpu_model
from gpu_checks.measure import backend_device
from gpu_checks.registry import Outcome, register, run_case, skip_row

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "triton", "mamba-ssm", "causal-conv1d", "nnunetv2", "dynamic-network-architectures", "timm")


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def nvidia_driver() -> str | None:
    """The driver version nvidia-smi reports, or None without nvidia-smi."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def describe_machine() -> dict:
    """GPU (name, capability, memory, multiprocessors), driver, CUDA, library versions, CPU, Python."""
    machine = {"packages": {name: package_version(name) for name in PACKAGES}, "cpu": cpu_model(),
               "cpu_cores": os.cpu_count(), "python": platform.python_version(), "cuda_runtime": torch.version.cuda,
               "mamba_ssm_kernel": backends.availability("cuda").available, "gpu": None, "driver": None}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        machine.update(gpu=properties.name, capability=f"{properties.major}.{properties.minor}",
                       gpu_memory_gib=round(properties.total_memory / 2 ** 30, 1),
                       multiprocessors=properties.multi_processor_count, driver=nvidia_driver())
    return machine


@register("environment", "the machine, and whether the device under test is visible", timeout_s=60, required=True)
def environment(settings):
    def check() -> Outcome:
        machine = describe_machine()
        if settings.dry_run:
            return Outcome(True, "dry run on the CPU (tiny shapes, Triton interpreted)", data={"machine": machine})
        if machine["gpu"] is None:
            return Outcome(False, "no CUDA device visible to torch (torch.cuda.is_available() is False): run this "
                                  "on a GPU machine, or use --dry-run to exercise it on the CPU",
                           data={"machine": machine})
        return Outcome(True, f"{machine['gpu']} (compute capability {machine['capability']}, "
                             f"{machine['gpu_memory_gib']} GiB, {machine['multiprocessors']} SMs)",
                       data={"machine": machine})
    yield run_case(settings, "environment", "device under test", check)


def doctor() -> Outcome:
    """``nnunetv2_mamba doctor`` of this checkout in a fresh interpreter; passes if it exits 0 and names a choice."""
    environment_variables = dict(os.environ)
    environment_variables["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPOSITORY), environment_variables.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "nnunetv2_mamba", "doctor"], capture_output=True, text=True,
                          timeout=180, env=environment_variables, cwd=REPOSITORY)
    log = (done.stdout + done.stderr).strip()
    chosen = next((line for line in done.stdout.splitlines() if line.startswith("chosen on")), "")
    passed = done.returncode == 0 and bool(chosen)
    return Outcome(passed, chosen or f"exit code {done.returncode}, no choice printed",
                   data={"log": log, "exit_code": done.returncode})


def auto_choice(device: str) -> Outcome:
    name, reason = backends.choose_backend("auto", torch.device(device))
    return Outcome(True, f"{name}: {reason}", data={"backend": name, "reason": reason})


def smoke_test(name: str, device: str) -> Outcome:
    failure = smoke_test_failure(name, device)
    return Outcome(failure is None, failure or f"a small scan on {device} matches the torch scan", data={})


@register("backends", "nnunetv2_mamba doctor, the auto backend's choice, each kernel backend's smoke test",
          timeout_s=240)
def scan_backends_report(settings):
    yield run_case(settings, "backends", "nnunetv2_mamba doctor", doctor)
    yield run_case(settings, "backends", f"auto choice on {settings.device}", lambda: auto_choice(settings.device))
    for name in BACKENDS:
        if name == "torch":  # the yardstick: auto runs no smoke test of it
            continue
        device, reason = backend_device(name, settings.device)
        case = f"smoke test of {name}"
        yield (skip_row("backends", case, reason) if device is None else
               run_case(settings, "backends", f"{case} on {device}", lambda: smoke_test(name, device)))


"""The machine a measurement ran on: CPU model, load, torch threads, GPU, library versions."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess

import torch

PACKAGES = ("torch", "triton", "mamba-ssm", "causal-conv1d", "nnunetv2", "dynamic-network-architectures", "timm")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what ``platform`` knows."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
        if names:
            return names[0]
    return platform.processor() or platform.machine()


def load_average() -> str:
    """"load average 1.2 0.9 0.7" (1, 5, 15 minutes), or "" where the OS has none."""
    return "load average %.1f %.1f %.1f" % os.getloadavg() if hasattr(os, "getloadavg") else ""


def machine_description(device: str) -> str:
    """One line: torch version, device (GPU name on CUDA), threads, cores, CPU model, OpenMP's wait policy,
    current load."""
    gpu = f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else ""
    return (f"torch {torch.__version__}, device {device}{gpu}, {torch.get_num_threads()} threads on "
            f"{os.cpu_count()} cores ({cpu_model()}), OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, "
            f"{load_average()}")


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


def machine_facts() -> dict:
    """GPU (name, capability, memory, multiprocessors; initialises CUDA where there is one), driver, CUDA, library
    versions, whether mamba-ssm's kernel imports, CPU, Python."""
    from nnunetv2_mamba.ops.backends import availability
    machine = {"packages": {name: package_version(name) for name in PACKAGES}, "cpu": cpu_model(),
               "cpu_cores": os.cpu_count(), "python": platform.python_version(), "cuda_runtime": torch.version.cuda,
               "mamba_ssm_kernel": availability("cuda").available, "gpu": None, "driver": None}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        machine.update(gpu=properties.name, capability=f"{properties.major}.{properties.minor}",
                       gpu_memory_gib=round(properties.total_memory / 2 ** 30, 1),
                       multiprocessors=properties.multi_processor_count, driver=nvidia_driver())
    return machine

"""Jobs that decide their device where they run (:mod:`.job_device`), as the benchmark builds them."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nnunetv2_mamba.comparison.execution import Job
from nnunetv2_mamba.comparison.job_device import where_file, wrap


def device_job(key: str, command: Sequence[str], device: str, executor, env: dict, log_file: Path,
               check_plans: tuple[str, Path, Path] | None = None) -> Job:
    """A job that runs ``command`` on the device it gets where ``executor`` runs it (``device``: nnU-Net's
    ``-device``, ``DEVICE`` in ``command`` stands for the one decided there); it asks for the GPUs
    ``executor.gpus_for(device)`` says, and records where it ran in ``where_file(log_file)``."""
    gpus = executor.gpus_for(device)
    return Job(key, wrap(command, device, gpus, where_file(log_file), check_plans), env, log_file, gpus=gpus)

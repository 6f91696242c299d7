"""slurm: one SLURM job per :class:`~.jobs.Job` through submitit's SlurmExecutor; states from `sacct` (one call
for all jobs per poll), results from submitit's result files in ``<state_dir>/<key>/``."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .base import Executor, ExecutorError
from .command import RunCommand
from .jobs import log_tail
from .settings import ExecutorSettings, sbatch_options
from .submitted import finished_outcome

WAITING = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "CONFIGURING", "SUSPENDED",
           "UNKNOWN"}  # UNKNOWN: submitted, not yet in sacct
RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT"}
ENDED_BY_COMMAND = {"COMPLETED", "FAILED"}  # everything else (TIMEOUT, CANCELLED, OUT_OF_MEMORY, ...) the scheduler did


def partitions() -> list[str]:
    """The partitions SLURM knows (`sinfo`), the default one without its '*'."""
    try:
        listing = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", None) or error
        raise ExecutorError(f"cannot ask SLURM for its partitions (sinfo): {detail}") from error
    return [name.rstrip("*") for name in listing.stdout.split()]


def check_slurm(settings: ExecutorSettings) -> None:
    """Raise ExecutorError unless sbatch is on PATH and the partition (if one is set) exists."""
    if shutil.which("sbatch") is None:
        raise ExecutorError("--executor slurm: no 'sbatch' on PATH; run on a SLURM login node (or module load slurm)")
    if settings.partition is not None:
        known = partitions()
        if settings.partition not in known:
            raise ExecutorError(f"SLURM has no partition {settings.partition!r}; it has: {', '.join(known)}")


class SlurmExecutor(Executor):
    def __init__(self, state_dir: Path, settings: ExecutorSettings, submitit):
        super().__init__(state_dir, settings)
        self.submitit = submitit

    def gpus_for(self, device: str) -> int:
        """``--slurm-gpus`` (settings ``gpus``) unless on CPU; without it one for ``-device cuda``, none for
        ``auto`` (never this login node's hardware)."""
        if device == "cpu":
            return 0
        return self.settings.gpus if self.settings.gpus is not None else int(device == "cuda")

    def _parameters(self, gpus: int) -> dict:
        settings = self.settings
        return {"partition": settings.partition, "time": settings.time_min, "cpus_per_task": settings.cpus,
                "mem": None if settings.mem_gb is None else f"{round(settings.mem_gb * 1024)}M",
                "gpus_per_node": gpus or None, "account": settings.account,
                "additional_parameters": sbatch_options(settings.extra), "stderr_to_stdout": True}

    def _start_queued(self) -> None:
        while self._queued:
            job = self._queued.pop(0)
            executor = self.submitit.SlurmExecutor(folder=self.state_dir / job.key)
            executor.update_parameters(job_name=job.key, **self._parameters(job.gpus))
            command = RunCommand(job.command, dict(job.env), str(job.log_file), ("CUDA_VISIBLE_DEVICES",),
                                 ignore_sigusr2=True)
            try:
                submitted = executor.submit(command)
            except self.submitit.core.utils.FailedJobError as error:
                self.book.update(job.key, "failed", f"sbatch refused the job: {error}")
                raise ExecutorError(f"sbatch refused job {job.key}: {error}") from error
            self.book.submitted(job.key, submitted.job_id)

    def _query(self, keys: list[str]) -> dict[str, tuple[str, str | None]]:
        watcher = self.submitit.SlurmJob.watcher
        for key in keys:
            watcher.register_job(self.book.get(key)["job_id"])
        watcher.update()  # one sacct call for all of them
        return {key: self._query_one(key, self.book.get(key)) for key in keys}

    def _query_one(self, key: str, record: dict) -> tuple[str, str | None]:
        job = self.submitit.SlurmJob(folder=self.state_dir / key, job_id=record["job_id"])
        state = job.watcher.get_state(record["job_id"], mode="cache").split()[0]  # "CANCELLED by 0" -> CANCELLED
        if state in WAITING:
            return "pending", None
        if state in RUNNING:
            return "running", None
        log_file = Path(record["log_file"])
        if state in ENDED_BY_COMMAND:
            return finished_outcome(job, log_file)
        return "failed", f"SLURM state {state}; last lines of {log_file}:\n{log_tail(log_file)}"

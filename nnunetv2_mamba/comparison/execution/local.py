"""local: submitit's LocalExecutor, at most `max_parallel` jobs at once on this machine, each GPU job pinned to
its own GPU through CUDA_VISIBLE_DEVICES; the rest wait in our queue. With wait=False only the first
`max_parallel` start; a later run() starts the others."""
from __future__ import annotations

import os
from pathlib import Path

from .base import Executor, ExecutorError
from .command import RunCommand
from .jobs import ACTIVE, log_tail
from .settings import ExecutorSettings
from .submitted import finished_outcome

NO_TIME_LIMIT_MIN = 60 * 24 * 365


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [gpu for gpu in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if gpu.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


class LocalExecutor(Executor):
    def __init__(self, state_dir: Path, settings: ExecutorSettings, submitit):
        super().__init__(state_dir, settings)
        self.submitit = submitit
        self.gpus = visible_gpus()
        self.slots = settings.max_parallel or max(1, len(self.gpus))

    def gpus_for(self, device: str) -> int:
        """One GPU unless on CPU, where this machine has one (the jobs run here)."""
        return int(device != "cpu" and bool(self.gpus))

    def _start_queued(self) -> None:
        started = [key for key, record in self.book.records.items()
                   if record["state"] in ACTIVE and record["job_id"] is not None]
        self.poll(started)  # every started job, asked for now or not: one that has ended frees its slot
        busy = {record["slot"] for record in self.book.records.values()
                if record["state"] in ACTIVE and record["job_id"] is not None}
        free = [slot for slot in range(self.slots) if slot not in busy]
        while self._queued and free:
            job, slot = self._queued.pop(0), free.pop(0)
            if job.gpus > 1:
                raise ExecutorError(f"job {job.key} wants {job.gpus} GPUs; the local executor gives each job one")
            env = dict(job.env)
            if job.gpus and self.gpus:
                env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
            executor = self.submitit.LocalExecutor(folder=self.state_dir / job.key)
            executor.update_parameters(timeout_min=self.settings.time_min or NO_TIME_LIMIT_MIN)
            submitted = executor.submit(RunCommand(job.command, env, str(job.log_file)))
            self.book.submitted(job.key, submitted.job_id, state="running", slot=slot)

    def _query(self, keys: list[str]) -> dict[str, tuple[str, str | None]]:
        return {key: self._query_one(key, self.book.get(key)) for key in keys}

    def _query_one(self, key: str, record: dict) -> tuple[str, str | None]:
        job_id, log_file = record["job_id"], Path(record["log_file"])
        job = self.submitit.local.local.LocalJob(folder=self.state_dir / key, job_id=job_id)
        if job.paths.result_pickle.exists():  # first: a controller's pid may linger (unreaped) or be reused
            return finished_outcome(job, log_file)
        if _alive(int(job_id)):  # the job id is the pid of submitit's controller process
            return "running", None
        return "failed", (f"the job's process ended without a result (killed, or past --slurm-time-min?);"
                          f" last lines of {log_file}:\n{log_tail(log_file)}")


def _alive(pid: int) -> bool:
    """Whether a job's controller process still runs, whether this process or an earlier one started it."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == 0  # our child: reaped here once it has ended
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """An ended process its parent has not reaped yet: the controller of a job started by a process that has exited
    since, under an init that reaps late (Linux's /proc; elsewhere False)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] in "ZX"  # the state follows the parenthesised command name

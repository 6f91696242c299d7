"""inline: every job from this process, one after the other (run() returns when all have ended, even with
wait=False). This machine is where the jobs run, so a job's device step (comparison/job_device.py) runs in this
process and its command starts with the environment decided there, Python commands as forks of a warm interpreter
(nnunetv2_mamba/warm) started with that environment."""
from __future__ import annotations

from pathlib import Path

from nnunetv2_mamba.comparison import job_device

from .base import Executor
from .command import RunCommand
from .jobs import Job, exit_error
from .settings import ExecutorSettings
from ...warm.interpreter import WarmInterpreter


class InlineExecutor(Executor):
    def __init__(self, state_dir: Path, settings: ExecutorSettings):
        super().__init__(state_dir, settings)
        self.interpreter = WarmInterpreter()

    def gpus_for(self, device: str) -> int:
        """One GPU unless on CPU, where this machine has one (the jobs run here)."""
        import torch

        return int(device != "cpu" and torch.cuda.is_available())

    def _start_queued(self) -> None:
        while self._queued:
            job = self._queued.pop(0)
            self.book.submitted(job.key, None, state="running")
            returncode = self._run(job)
            self.book.update(job.key, "done" if returncode == 0 else "failed",
                             None if returncode == 0 else exit_error(returncode, job.log_file))

    def _run(self, job: Job) -> int:
        command, env = tuple(job.command), dict(job.env)
        if job_device.wraps(command):
            job.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(job.log_file, "a") as log:
                prepared = job_device.prepare(command[3:], env, log, log)
            if isinstance(prepared, int):
                return prepared
            command, env = tuple(prepared[0]), prepared[1]
        return RunCommand(command, env, str(job.log_file))(self.interpreter.popen)

"""inline: every job in this process, one after the other (run() returns when all have ended, even with
wait=False)."""
from __future__ import annotations

from .base import Executor
from .command import RunCommand
from .jobs import exit_error


class InlineExecutor(Executor):
    def gpus_for(self, device: str) -> int:
        """One GPU unless on CPU, where this machine has one (the jobs run here)."""
        import torch

        return int(device != "cpu" and torch.cuda.is_available())

    def _start_queued(self) -> None:
        while self._queued:
            job = self._queued.pop(0)
            self.book.submitted(job.key, None, state="running")
            returncode = RunCommand(job.command, dict(job.env), str(job.log_file))()
            self.book.update(job.key, "done" if returncode == 0 else "failed",
                             None if returncode == 0 else exit_error(returncode, job.log_file))

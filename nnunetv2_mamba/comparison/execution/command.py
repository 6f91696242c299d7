"""The function every executor runs for a :class:`~.jobs.Job`: its command with its environment, output appended
to its log file. submitit pickles it into the job, so it imports nothing beyond the standard library."""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunCommand:
    """Run `command` with exactly `env` (plus the `scheduler_variables` the scheduler set for this job, e.g. the
    GPU SLURM allotted in CUDA_VISIBLE_DEVICES), stdout and stderr appended to `log_file`; return its exit code."""
    command: tuple[str, ...]
    env: dict[str, str]
    log_file: str
    scheduler_variables: tuple[str, ...] = ()

    def __call__(self) -> int:
        env = dict(self.env)
        env.update({name: os.environ[name] for name in self.scheduler_variables if name in os.environ})
        Path(self.log_file).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(self.command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       preexec_fn=_ignore_time_limit_warning)
            while True:
                try:
                    return process.wait()
                except Exception as warning:  # noqa: BLE001 - see below
                    # submitit's handler of the scheduler's "time limit near" signal raises here (the command is
                    # not checkpointable). Let the command run on: the scheduler ends it at the limit and reports
                    # TIMEOUT, and the harness resumes it with --c.
                    log.write(f"[executor] {type(warning).__name__}: {warning}; the command runs on\n".encode())
                    log.flush()


def _ignore_time_limit_warning() -> None:
    """In the command's process, before exec: ignore SIGUSR2, which SLURM sends to every process of a submitit job
    shortly before its time limit (the ignoring is inherited, so the command is not killed by it)."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)

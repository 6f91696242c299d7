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
    GPU SLURM allotted in CUDA_VISIBLE_DEVICES), stdout and stderr appended to `log_file`; return its exit code.
    `ignore_sigusr2`: the command ignores SIGUSR2, which SLURM sends to every process of a submitit job shortly
    before its time limit (without this it would kill the command then)."""
    command: tuple[str, ...]
    env: dict[str, str]
    log_file: str
    scheduler_variables: tuple[str, ...] = ()
    ignore_sigusr2: bool = False

    def __call__(self, popen=subprocess.Popen) -> int:
        """``popen`` starts the command (subprocess.Popen's signature; the inline executor's warm interpreter)."""
        env = dict(self.env)
        env.update({name: os.environ[name] for name in self.scheduler_variables if name in os.environ})
        Path(self.log_file).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            process = self._start(env, log, popen)
            while True:
                try:
                    return process.wait()
                except Exception as warning:  # noqa: BLE001 - see below
                    # submitit's handler of the scheduler's "time limit near" signal raises here (the command is
                    # not checkpointable). Let the command run on: the scheduler ends it at the limit and reports
                    # TIMEOUT, and the harness resumes it with --c.
                    log.write(f"[executor] {type(warning).__name__}: {warning}; the command runs on\n".encode())
                    log.flush()

    def _start(self, env: dict[str, str], log, popen) -> subprocess.Popen:
        if self.ignore_sigusr2:
            handler = signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # an ignored signal stays ignored through exec
        try:
            return popen(list(self.command), env=env, stdout=log, stderr=subprocess.STDOUT)
        finally:
            if self.ignore_sigusr2:
                signal.signal(signal.SIGUSR2, handler)

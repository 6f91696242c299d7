"""Where a benchmark's commands run. (Interim: inline only; the submitit executors replace this module.)"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Job:
    """One command of a benchmark; an executor decides only where it runs."""
    key: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    log_file: Path
    gpus: int = 0


@dataclass(frozen=True)
class Outcome:
    key: str
    state: str
    log_file: Path
    job_id: str | None
    error: str | None


class InlineExecutor:
    def run(self, jobs: Sequence[Job], wait: bool = True) -> dict[str, Outcome]:
        outcomes = {}
        for job in jobs:
            job.log_file.parent.mkdir(parents=True, exist_ok=True)
            with job.log_file.open("a") as handle:
                code = subprocess.run(job.command, env=dict(job.env), stdout=handle, stderr=subprocess.STDOUT).returncode
            tail = "\n".join(job.log_file.read_text(errors="replace").splitlines()[-25:])
            outcomes[job.key] = Outcome(job.key, "done" if code == 0 else "failed", job.log_file, None,
                                        None if code == 0 else f"exit code {code}:\n{tail}")
        return outcomes


def make_executor(kind: str, state_dir: Path, settings=None):
    return InlineExecutor()

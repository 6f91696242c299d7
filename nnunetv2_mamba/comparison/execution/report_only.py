"""``--report-only``: an executor that never submits. It answers for another executor's earlier submissions (their
recorded state, asking its scheduler about active ones) and for every other job "not submitted", so the benchmark
runs its stages unchanged and reports what exists."""
from __future__ import annotations

from typing import Sequence

from .base import Executor
from .jobs import Job, Outcome, check_jobs

NOT_SUBMITTED = "not submitted"


class ReportOnlyExecutor:
    submits = False

    def __init__(self, recorder: Executor):
        self.recorder = recorder  # the executor the benchmark submits with: its record and scheduler

    def run(self, jobs: Sequence[Job], wait: bool = True) -> dict[str, Outcome]:
        check_jobs(jobs)
        outcomes = self.recorder.poll(self.recorder.recorded([job.key for job in jobs]))
        return {job.key: outcomes.get(job.key) or Outcome(job.key, "pending", job.log_file, None, NOT_SUBMITTED)
                for job in jobs}

    def gpus_for(self, device: str) -> int:
        return self.recorder.gpus_for(device)

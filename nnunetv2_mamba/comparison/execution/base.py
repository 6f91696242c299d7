"""What every executor shares: re-attaching to recorded jobs, skipping finished ones, the wait loop and its
progress line."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from tqdm import tqdm

from .jobs import ACTIVE, Job, JobBook, Outcome, check_jobs
from .settings import ExecutorSettings


class ExecutorError(RuntimeError):
    """Bad executor settings or an unusable scheduler (make_executor raises it before anything is submitted)."""


class Executor:
    """Runs :class:`Job` s somewhere and records them in ``<state_dir>/jobs.json``. A job recorded as pending or
    running (with a job id) is re-attached, not submitted again; every other job given is started: the caller
    decides what is left to do (the harness asks only for runs that are not finished)."""
    poll_max_s = 30.0
    submits = True  # False for ReportOnlyExecutor, which answers from the record only

    def __init__(self, state_dir: Path, settings: ExecutorSettings):
        self.state_dir = Path(state_dir)
        self.settings = settings
        self.book = JobBook(self.state_dir)
        self._queued: list[Job] = []

    def run(self, jobs: Sequence[Job], wait: bool = True) -> dict[str, Outcome]:
        check_jobs(jobs)
        self.book.reload()
        for job in jobs:
            if self._needs_start(job):
                self.book.queue(job)
                self._queued.append(job)
        keys = [job.key for job in jobs]
        self._start_queued()
        if wait:
            self._wait(keys)
        return self.poll(keys)

    def poll(self, keys: Iterable[str]) -> dict[str, Outcome]:
        """The state of earlier submissions (asking the scheduler about active ones); submits nothing."""
        keys = list(keys)
        self.book.reload()
        active = [key for key in keys if (record := self.book.get(key)) is not None
                  and record["state"] in ACTIVE and record["job_id"] is not None]
        if active:
            for key, (state, error) in self._query(active).items():
                self.book.update(key, state, error)
        return {key: self.book.outcome(key) for key in keys}

    def recorded(self, keys: Iterable[str]) -> list[str]:
        """The ``keys`` that have a record (were given to ``run`` before): those ``poll`` can answer for."""
        self.book.reload()
        return [key for key in keys if self.book.get(key) is not None]

    def gpus_for(self, device: str) -> int:
        """The GPUs a job to run on ``device`` (nnU-Net's ``-device``: auto, cpu or cuda) asks for where this
        executor runs it; the job itself decides its device there (comparison/job_device.py)."""
        raise NotImplementedError

    def _needs_start(self, job: Job) -> bool:
        record = self.book.get(job.key)
        if record is None:
            return True
        if record["state"] in ACTIVE:
            return record["job_id"] is None  # queued by an earlier call that did not wait: never started
        return True

    def _wait(self, keys: list[str]) -> None:
        started = time.monotonic()
        with tqdm(total=len(keys), desc="jobs", unit="job", mininterval=1) as progress:
            while True:
                outcomes = self.poll(keys)
                self._start_queued()
                counts = Counter(outcome.state for outcome in outcomes.values())
                progress.n = counts["done"] + counts["failed"]
                progress.set_postfix_str(", ".join(f"{counts[state]} {state}"
                                                   for state in ("pending", "running", "done", "failed")))
                if progress.n == len(keys):
                    return
                time.sleep(min(self.poll_max_s, 1 + (time.monotonic() - started) / 20))

    def _start_queued(self) -> None:
        """Hand as many queued jobs to the scheduler as it takes now (recording their ids)."""
        raise NotImplementedError

    def _query(self, keys: list[str]) -> dict[str, tuple[str, str | None]]:
        """{key: (state, error)} of submitted jobs, as the scheduler reports them now."""
        raise NotImplementedError

"""What the harness hands an executor (:class:`Job`), what it gets back (:class:`Outcome`), and the record of every
submission in ``<state_dir>/jobs.json`` that lets a later call re-attach instead of submitting twice."""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

STATES = ("pending", "running", "done", "failed")
KEY_SEPARATOR = "."  # between a job key's kind and its subject's parts; not nnU-Net's double underscore
ACTIVE = ("pending", "running")
_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Job:
    """One command of a benchmark; an executor decides only where it runs."""
    key: str                   # unique, filesystem-safe (``job_key``), e.g. "train.<model identifier>.fold0"
    command: tuple[str, ...]   # e.g. ("/venv/bin/nnUNetv2_train", "900", "2d", "0", "-tr", ..., "--c")
    env: Mapping[str, str]     # the complete environment the command must run with (the harness builds it)
    log_file: Path             # the command's stdout+stderr are appended here, whatever the executor
    gpus: int = 0              # GPUs the job wants (0 on CPU, 1 for a GPU training)


@dataclass(frozen=True)
class Outcome:
    key: str
    state: str                 # "done" | "failed" | "pending" | "running"
    log_file: Path
    job_id: str | None         # scheduler's id (None inline)
    error: str | None          # for "failed": the reason (exit code and the log's last lines, or the scheduler's state)


def job_key(kind: str, *subject: str) -> str:
    """The key of a job of ``kind`` (``train``, ``cost``, ``predict``, ``export``, ...) on ``subject`` (a model's
    identifier and a fold, a method's name, ...): its parts joined by ``KEY_SEPARATOR``, e.g.
    ``train.<identifier>.fold0``; no subject: the kind alone. Unique while a kind's subjects are, and filesystem-safe
    while they are (letters, digits, '_' and '-'): it names the job's log file (``job_log``), its executor's folder
    and its jobs.json entry."""
    return KEY_SEPARATOR.join((kind, *subject))


def job_log(logs: Path, key: str) -> Path:
    """The log file, in the folder ``logs``, of the job ``key``."""
    return Path(logs) / f"{key}.log"


def check_jobs(jobs: Sequence[Job]) -> None:
    """Raise ValueError unless every key is filesystem-safe and unique (keys name folders and jobs.json entries)."""
    seen = set()
    for job in jobs:
        if not _SAFE_KEY.fullmatch(job.key):
            raise ValueError(f"job key {job.key!r}: use letters, digits, '.', '_' and '-' only")
        if job.key in seen:
            raise ValueError(f"job key {job.key!r} appears twice in one run")
        seen.add(job.key)


def log_tail(log_file: Path, lines: int = 20) -> str:
    """The last `lines` lines of a job's log ('' when it was never written)."""
    try:
        with open(log_file, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 64 * 1024))
            return b"\n".join(handle.read().splitlines()[-lines:]).decode(errors="replace")
    except FileNotFoundError:
        return ""


def exit_error(returncode: int, log_file: Path) -> str:
    """The `error` of a command that exited non-zero."""
    return f"exit code {returncode}; last lines of {log_file}:\n{log_tail(log_file)}"


class JobBook:
    """``<state_dir>/jobs.json``: {key: {job_id, state, log_file, submitted_at, command, error, slot}}, rewritten
    atomically after every change (only the harness process writes it)."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / "jobs.json"  # its folder is made with the first record, not before
        self.reload()

    def reload(self) -> None:
        """Read the file again (another executor on the same folder may have written it)."""
        self.records: dict[str, dict] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def queue(self, job: Job) -> None:
        """Record `job` as pending, not yet handed to a scheduler (job_id None)."""
        self.records[job.key] = {"job_id": None, "state": "pending", "log_file": str(job.log_file),
                                 "submitted_at": None, "command": list(job.command), "error": None, "slot": None}
        self.save()

    def submitted(self, key: str, job_id: str | None, state: str = "pending", slot: int | None = None) -> None:
        self.records[key].update(job_id=job_id, state=state, slot=slot, error=None,
                                 submitted_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self.save()

    def update(self, key: str, state: str, error: str | None = None) -> None:
        assert state in STATES, state
        record = self.records[key]
        if (record["state"], record["error"]) != (state, error):
            record.update(state=state, error=error)
            self.save()

    def outcome(self, key: str) -> Outcome:
        if key not in self.records:
            raise KeyError(f"no job {key!r} recorded in {self.path}: run it first")
        record = self.records[key]
        return Outcome(key, record["state"], Path(record["log_file"]), record["job_id"], record["error"])

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".json.tmp")
        scratch.write_text(json.dumps(self.records, indent=1, sort_keys=True))
        os.replace(scratch, self.path)

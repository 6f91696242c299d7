"""Where a benchmark's commands run: in this process, in parallel on this machine, or as SLURM jobs (through
submitit). ``make_executor(kind, state_dir, settings).run(jobs)`` (see docs/cluster.md)."""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from .base import Executor, ExecutorError
from .inline import InlineExecutor
from .jobs import Job, Outcome, job_key, job_log
from .report_only import ReportOnlyExecutor
from .settings import KINDS, ExecutorSettings, SettingsError, add_executor_arguments, settings_from_arguments

__all__ = ["Executor", "ExecutorError", "ExecutorSettings", "Job", "Outcome", "ReportOnlyExecutor", "SettingsError",
           "add_executor_arguments", "executor_from_arguments", "job_key", "job_log", "make_executor"]


def _submitit():
    try:
        return importlib.import_module("submitit")
    except ImportError as error:
        raise ExecutorError("the local and slurm executors need submitit: pip install 'submitit>=1.5,<2'") from error


def make_executor(kind: str, state_dir: Path, settings: ExecutorSettings | None = None) -> Executor:
    """The executor `kind` (inline | local | slurm), recording its jobs in `state_dir`; raises ExecutorError for
    settings it cannot use, before anything is submitted."""
    settings = settings or ExecutorSettings()
    if kind == "inline":
        return InlineExecutor(state_dir, settings)
    if kind == "local":
        from .local import LocalExecutor

        return LocalExecutor(state_dir, settings, _submitit())
    if kind == "slurm":
        from .slurm import SlurmExecutor, check_slurm

        submitit = _submitit()
        check_slurm(settings)
        return SlurmExecutor(state_dir, settings, submitit)
    raise ExecutorError(f"unknown executor {kind!r}; choose one of {', '.join(KINDS)}")


def executor_from_arguments(args: argparse.Namespace, state_dir: Path) -> Executor:
    """The executor the flags of :func:`add_executor_arguments` ask for (`args.no_wait` is the caller's)."""
    return make_executor(args.executor, state_dir, settings_from_arguments(args))

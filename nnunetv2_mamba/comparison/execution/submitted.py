"""The outcome of a job submitit ran to its end: the command's exit code, or the error submitit recorded."""
from __future__ import annotations

from pathlib import Path

from .jobs import exit_error


def finished_outcome(job, log_file: Path) -> tuple[str, str | None]:
    """(state, error) of a submitit job whose process has ended; waits briefly for its result file."""
    exception = job.exception()
    if exception is not None:
        return "failed", "\n".join(str(exception).strip().splitlines()[-20:])
    returncode = job.result()
    return ("done", None) if returncode == 0 else ("failed", exit_error(returncode, log_file))

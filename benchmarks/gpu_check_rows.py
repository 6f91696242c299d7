"""A pytest plugin (``-p gpu_check_rows``) that turns each GPU check test's report into one row of gpu_check.py's
table, written as a JSON line to ``$GPU_CHECK_ROWS`` as soon as it is known (so a process that dies keeps the rows
before) and printed. The check is the test file's name (tests/gpu/test_gpu_<check>.py); the case what the test
named through its ``report`` fixture, else its parameter id; the result, time and numbers what it recorded.

Identical SKIP rows (a backend that cannot run, met once per dtype and shape) are written once.
``$GPU_CHECK_INJECT_CRASH`` (JSON list, tests of gpu_check.py only): these checks' processes die by SIGSEGV after
their first row.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from gpu_check_report import FAIL, PASS, SKIP, WHOLE_CHECK, Row, print_row

ROWS_VARIABLE, CRASH_VARIABLE = "GPU_CHECK_ROWS", "GPU_CHECK_INJECT_CRASH"
_written: set = set()


def check_of(report) -> str:
    return Path(report.location[0]).stem.removeprefix("test_gpu_")


def error_line(report, limit: int = 400) -> str:
    """The failure's ``Type: message`` on one line, shortened to ``limit`` characters."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = " ".join((crash.message if crash else str(report.longrepr).strip().splitlines()[-1]).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def write(row: Row) -> None:
    key = (row.check, row.case, row.status, row.result)
    if row.status == SKIP and key in _written:
        return
    _written.add(key)
    with open(os.environ[ROWS_VARIABLE], "a") as rows:
        rows.write(json.dumps(row.as_json()) + "\n")
    print_row(row)
    if row.check in json.loads(os.environ.get(CRASH_VARIABLE) or "[]"):
        os.kill(os.getpid(), signal.SIGSEGV)


def skip_reason(report) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def pytest_runtest_logreport(report) -> None:
    """One row per test: its call's outcome, or its setup's where that skipped or failed."""
    if report.when == "call" or (report.when == "setup" and not report.passed) or (
            report.when == "teardown" and report.failed):
        properties = dict(report.user_properties)
        case = properties.get("case") or (report.nodeid.split("[", 1)[1][:-1] if "[" in report.nodeid
                                          else report.nodeid.split("::")[-1])
        if report.skipped and skip_reason(report).startswith("got empty parameter set"):
            return  # a parametrisation with no case in this mode (no extra backends in a dry run): no row
        if report.skipped:
            row = Row(check_of(report), case, SKIP, skip_reason(report))
        else:
            status = PASS if report.passed else FAIL
            result = properties.get("result") or ("" if report.passed else error_line(report))
            row = Row(check_of(report), case, status, result, properties.get("time", ""),
                      properties.get("data", {}))
        write(row)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session) -> None:
    """A check stopped early (a broken CUDA context) ends with a FAIL row saying so."""
    if session.shouldstop and session.items:
        write(Row(Path(session.items[0].path).stem.removeprefix("test_gpu_"), WHOLE_CHECK, FAIL,
                  str(session.shouldstop)))

"""The registry of checks, the row each case reports, and the runner that keeps one case's failure to its row.

A check is a generator ``f(settings) -> Iterator[Row]`` registered with :func:`register`; gpu_check.py runs each
registered check in its own process, in registration order. A new check (a 3D network, say) is one function::

    @register("nets_3d", "SS3D networks: AMP training step and inference at the 3d_fullres plan", timeout_s=180)
    def networks_3d(settings):
        yield run_case(settings, "nets_3d", "MambaUNet3D AMP step", lambda: ...)  # returns an Outcome
"""
from __future__ import annotations

import gc
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterator

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
WHOLE_CHECK = "(whole check)"


@dataclass
class Row:
    """One line of the report: a case of a check, its status, what was measured (text and raw numbers)."""
    check: str
    case: str
    status: str
    result: str = ""
    time: str = ""
    data: dict = field(default_factory=dict)


@dataclass
class Outcome:
    """What a case's measurement returns: whether it passed, a one-line result, its time, the raw numbers."""
    passed: bool
    result: str
    time: str = ""
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    function: Callable[..., Iterator[Row]]
    timeout_s: float
    required: bool  # a FAIL here stops the run: the later checks could not mean anything


CHECKS: dict[str, Check] = {}


def register(name: str, description: str, timeout_s: float, required: bool = False):
    """Decorator: add a check generator to :data:`CHECKS` (report order = registration order)."""
    def decorate(function):
        if name in CHECKS:
            raise ValueError(f"two checks are named {name!r}")
        CHECKS[name] = Check(name, description, function, timeout_s, required)
        return function
    return decorate


class InjectedFailure(RuntimeError):
    """Raised in place of a case's measurement when a test asks for it (``--inject-failure``)."""


def one_line(error: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line, shortened to ``limit`` characters."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def release_memory() -> None:
    """Drop what a finished or failed case left behind, so the next case starts from free memory."""
    gc.collect()
    import torch
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def run_case(settings, check: str, case: str, measure: Callable[[], Outcome]) -> Row:
    """Run one case; an exception becomes its FAIL row (traceback on stderr) and never reaches the caller."""
    try:
        if any(text in f"{check}: {case}" for text in settings.inject_failure):
            raise InjectedFailure("injected by --inject-failure")
        outcome = measure()
    except (Exception, SystemExit) as error:  # any failure of one case is that case's result; the run goes on
        print(f"[{check}: {case}] failed:", flush=True)
        traceback.print_exc()
        release_memory()
        return Row(check, case, FAIL, one_line(error))
    release_memory()
    return Row(check, case, PASS if outcome.passed else FAIL, outcome.result, outcome.time, outcome.data)


def skip_row(check: str, case: str, reason: str) -> Row:
    return Row(check, case, SKIP, reason)

"""Fixtures and hooks of the GPU checks (tests marked ``gpu``): the run's settings (skipped without CUDA unless
``benchmarks/gpu_check.py --dry-run`` asked for the CPU), and ``report``, through which a check names its case and
records its result, time and raw numbers as the test's user properties (what gpu_check.py's table shows).

``$NNUNETV2_MAMBA_GPU_CHECK_INJECT_FAILURE`` (JSON list, tests of gpu_check.py only): a case whose "check: case"
contains one of its texts fails when it is named.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from gpu_settings import allow_kernels_on_cpu, current_settings

INJECT_FAILURE_VARIABLE = "NNUNETV2_MAMBA_GPU_CHECK_INJECT_FAILURE"
SETTINGS = current_settings()
if SETTINGS.dry_run:
    allow_kernels_on_cpu()


class InjectedFailure(RuntimeError):
    """Raised in place of a case's measurement when a test of gpu_check.py asks for it."""


def check_name(path) -> str:
    """The check a GPU test file holds: tests/gpu/test_gpu_<check>.py."""
    return Path(str(path)).stem.removeprefix("test_gpu_")


@pytest.fixture(scope="session")
def settings():
    if SETTINGS.device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (torch.cuda.is_available() is False): run it on a GPU machine, or "
                    "python benchmarks/gpu_check.py --dry-run on the CPU")
    return SETTINGS


class Report:
    """The case a test checks and what it found, kept in the test's user properties."""

    def __init__(self, item):
        self.item = item

    def _set(self, key: str, value) -> None:
        self.item.user_properties[:] = [(k, v) for k, v in self.item.user_properties if k != key] + [(key, value)]

    def case(self, case: str) -> None:
        self._set("case", case)
        check = check_name(self.item.path)
        injected = json.loads(os.environ.get(INJECT_FAILURE_VARIABLE) or "[]")
        if any(text in f"{check}: {case}" for text in injected):
            raise InjectedFailure("injected by --inject-failure")

    def record(self, outcome) -> None:
        """Keep ``outcome``'s result, time and numbers; the test then asserts ``outcome.passed``."""
        for key in ("result", "time", "data"):
            self._set(key, getattr(outcome, key))


@pytest.fixture
def report(request):
    yield Report(request.node)
    import gc
    gc.collect()  # the next case starts from free memory
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def cuda_context_failure() -> str | None:
    """None if CUDA (when this process uses it) still runs work, else the error: after an illegal memory access,
    say, every later CUDA call fails, and the rest of the check would only repeat that error."""
    if not torch.cuda.is_initialized():
        return None
    try:
        torch.ones(1, device="cuda").add_(1).item()
    except Exception as error:  # the context is gone, whatever the exception type
        return " ".join(f"{type(error).__name__}: {error}".split())
    return None


def pytest_runtest_makereport(item, call):
    """A broken CUDA context after a failing case stops the rest of the check."""
    if call.when == "call" and call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception):
        broken = cuda_context_failure()
        if broken:
            item.session.shouldstop = (f"CUDA no longer works after the case above ({broken}): the rest of this "
                                       f"check was not run")

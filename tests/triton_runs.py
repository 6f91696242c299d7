"""How the Triton tests run their kernels (test_ops_triton.py, test_ops_triton_3d.py): the kernels run in ONE
subprocess (the test file run as a script), under ``TRITON_INTERPRET=1`` on a machine without CUDA and compiled on
the GPU otherwise, and are also compiled offline for a real GPU (sm_80) to catch what the interpreter lets pass."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def run_worker(test_file: str, results_path: Path, timeout: int) -> dict:
    """Run ``python test_file results_path`` (its ``__main__`` saves a dict of tensors there) and load the dict."""
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    done = subprocess.run([sys.executable, test_file, str(results_path)], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"Triton worker failed:\n{done.stdout}\n{done.stderr}"
    return torch.load(results_path, weights_only=True)


def compile_offline(script: str) -> list[str]:
    """The stdout lines of ``script`` (which compiles kernels for sm_80 and prints a line per kernel), run without
    the interpreter; skips the test when this triton has no offline compile API."""
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.compiler import ASTSource  # noqa: F401
    except ImportError as error:
        pytest.skip(f"this triton has no offline compile API: {error}")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()

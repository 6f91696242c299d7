"""Plain helpers shared by several test files (pytest fixtures live in conftest.py): the scan's test inputs,
and running Python or nnU-Net commands in a subprocess.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
DATASET = "Dataset900_CardiacPhantom"


def make_scan_inputs(seqlen, groups=1, bc_3d=False, has_D=True, has_z=True, has_delta_bias=True,
                     batch=2, dim=4, dstate=8, dtype=torch.float32):
    """mamba-ssm's test inputs (seed 0): A = -0.5 rand, delta = 0.5 rand, delta_bias = 0.5 rand, the rest randn.

    u, delta, z: (batch, dim, seqlen); A: (dim, dstate); B, C: (batch, groups, dstate, seqlen), or (batch, dstate,
    seqlen) with ``bc_3d``; D, delta_bias: (dim,). Every given tensor requires grad.
    """
    torch.manual_seed(0)
    bc_shape = (batch, dstate, seqlen) if bc_3d else (batch, groups, dstate, seqlen)
    inputs = {
        "u": torch.randn(batch, dim, seqlen, dtype=dtype),
        "delta": 0.5 * torch.rand(batch, dim, seqlen, dtype=dtype),
        "A": -0.5 * torch.rand(dim, dstate),
        "B": torch.randn(bc_shape, dtype=dtype),
        "C": torch.randn(bc_shape, dtype=dtype),
        "D": torch.randn(dim) if has_D else None,
        "z": torch.randn(batch, dim, seqlen, dtype=dtype) if has_z else None,
        "delta_bias": 0.5 * torch.rand(dim) if has_delta_bias else None,
    }
    return {k: (v.requires_grad_() if v is not None else None) for k, v in inputs.items()}


def run_python(code: str, pythonpath=None) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) in a fresh interpreter with the automatic scan backend; ``pythonpath`` goes first on
    its PYTHONPATH. Returns the finished process (text stdout/stderr)."""
    env = dict(os.environ, nnUNet_mamba_scan="")
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath)] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=300)


def run(command: list[str], env: dict, **extra_env) -> str:
    """Run an nnU-Net command; its combined output, or a failure showing the output's tail."""
    result = subprocess.run(command, env={**env, **extra_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-4000:]}"
    return result.stdout

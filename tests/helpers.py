"""Plain helpers shared by several test files (pytest fixtures live in conftest.py): fp32 tolerances, the scan's
test inputs, running Python or nnU-Net commands in a subprocess, and a training batch for a trainer in process.

fp32 tolerances. Every fp32 operation returns its exact result times (1 + δ) with |δ| <= u = 2^-24, the unit
roundoff. A value computed through a chain of n roundings (n terms of a sum or a dot product, in any order or
blocking; n steps of a recurrence; the pointwise ops in between) is within γ_n = n·u / (1 - n·u) of its exact
value, relative to the magnitude of the terms it is made of (Higham, "Accuracy and Stability of Numerical
Algorithms", 2nd ed., Lemma 3.1 and eq. (3.5)). Two fp32 evaluations of one function that round in different
orders (another loop nest, another SIMD width, AVX-512 or AVX2 or none, a reduction split over another number of
threads) are therefore within 2·γ_n of each other. That is a bound over every order, so it holds on any CPU, where
a tolerance fitted to one machine's rounding does not. The magnitude is taken normwise, as LAPACK's test programs
scale their residuals: the reference's largest element (or an explicit bound on the terms), not each element's
own value, because an element that is small because its terms cancel still carries its terms' absolute error.

The selective scan against its reference uses mamba-ssm's own test tolerances, fp32 (rtol, atol) = (6e-4, 2e-3)
for outputs and up to (3e-3, 2e-2) for gradients: the compatibility contract with mamba-ssm's kernel. They bound
the fp32 error on any CPU for the lengths tested (L <= 4096): a term of the state h_t = a_t h_{t-1} + x_t that has
been carried k steps has picked up at most 2k + O(1) roundings (γ_{2L+N} ≈ 4.9e-4 at L = 4096, N = 16, relative to
the terms, already under the outputs' rtol 6e-4 in the worst case; the parameter gradients dA, dD, dΔbias add a sum
over the b·L positions, γ ≈ 9.8e-4 at b = 2, under their rtol 1e-3), and it is multiplied by decays a <= 1, so older
terms, the ones with the most roundings, weigh least. The decays themselves are exact to a few u: exp of an
argument x with relative error ε is off by ε·|x|·exp(-|x|) <= ε/e absolutely, so the exponent's conditioning never
amplifies. The observed errors are 6-12 u relative to the largest output or gradient, at least 40x inside the
tolerances.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from nnunetv2_mamba.warm.interpreter import WarmInterpreter

UNIT_ROUNDOFF_FP32 = 2.0 ** -24

REPO = Path(__file__).resolve().parent.parent
DATASET = "Dataset900_CardiacPhantom"


def gamma(roundings: int, unit_roundoff: float = UNIT_ROUNDOFF_FP32) -> float:
    """Higham's γ_n = n·u / (1 - n·u): the relative error bound of a chain of n roundings."""
    return roundings * unit_roundoff / (1 - roundings * unit_roundoff)


def assert_fp32_close(actual: torch.Tensor, expected: torch.Tensor, roundings: int, scale: float | None = None,
                      msg=None) -> None:
    """Two fp32 evaluations of one function, each through at most ``roundings`` roundings: equal within
    2·γ_roundings·scale everywhere, ``scale`` bounding the magnitude of the terms (default: max |expected|)."""
    if scale is None:
        scale = expected.detach().abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=0, atol=2 * gamma(roundings) * scale, msg=msg)


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


#: nnU-Net's commands and ours, started as the inline executor starts them: forks of a warm interpreter (a fresh
#: interpreter for commands it cannot run warm). Tests of what a fresh interpreter does start their own.
COMMANDS = WarmInterpreter()


def run(command: list[str], env: dict, **extra_env) -> str:
    """Run an nnU-Net command; its combined output, or a failure showing the output's tail."""
    result = COMMANDS.run(command, env={**env, **extra_env}, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-4000:]}"
    return result.stdout


def nnunetv2_mamba(env: dict, *arguments: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """``python -m nnunetv2_mamba ARGUMENTS`` with ``env``: the finished process, stdout and stderr in one."""
    return COMMANDS.run([sys.executable, "-m", "nnunetv2_mamba", *arguments], env=env, timeout=timeout)


def batch_of(trainer, nan: bool = False) -> dict:
    """A batch of 2 random 32x32 images with deep-supervision targets; one pixel NaN if ``nan``."""
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(2, 1, 32, 32, generator=generator)
    if nan:
        data[0, 0, 3, 5] = float("nan")
    targets = [torch.randint(0, 4, (2, 1, *o.shape[-2:]), generator=generator).float()
               for o in trainer.network(data.nan_to_num())]
    return {"data": data, "target": targets}

"""Our reference scan (and the torch and cpu scans) equal mamba-ssm's own ``selective_scan_ref``.

mamba-ssm imports only with its compiled kernel; on CPU a stub ``selective_scan_cuda`` module lets its pure-PyTorch
reference import. The stub lives in a subprocess so that it never leaks into this test session.
"""
import importlib.util
import os
import subprocess
import sys

import pytest

COMPARE = r"""
import sys, types
import torch
sys.modules.setdefault("selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
from mamba_ssm.ops.selective_scan_interface import selective_scan_ref
from nnunetv2_mamba.ops import selective_scan_reference
from nnunetv2_mamba.ops.backends import availability
from nnunetv2_mamba.ops.scan_torch import selective_scan_torch

def outputs(scan, inputs, grad):
    out, state = scan(*inputs, delta_softplus=True, return_last_state=True)
    given = [t for t in inputs if t is not None]
    return [out, state, *torch.autograd.grad(out, given, grad)]

for seqlen, groups in [(128, 1), (257, 2)]:
    torch.manual_seed(0)
    bc = (2, 8, seqlen) if groups == 1 else (2, groups, 8, seqlen)
    inputs = [torch.randn(2, 4, seqlen), 0.5 * torch.rand(2, 4, seqlen), -0.5 * torch.rand(4, 8),
              torch.randn(bc), torch.randn(bc), torch.randn(4), torch.randn(2, 4, seqlen), 0.5 * torch.rand(4)]
    inputs = [t.requires_grad_() for t in inputs]
    grad = torch.randn(2, 4, seqlen)
    theirs = outputs(selective_scan_ref, inputs, grad)
    scans = [("reference", selective_scan_reference), ("torch", selective_scan_torch)]
    if availability("cpu").available:
        scans.append(("cpu", availability("cpu").function))
    for name, scan in scans:
        for i, (a, b) in enumerate(zip(outputs(scan, inputs, grad), theirs)):
            # fp32 scans in other orders: mamba-ssm's fp32 tolerances (their loosest rtol with the outputs' atol),
            # which bound that error on any CPU (tests/helpers.py)
            torch.testing.assert_close(a, b, rtol=1e-3, atol=2e-3, msg=lambda m: f"{name} L={seqlen} #{i}: {m}")
print("all equal:", ", ".join(name for name, _ in scans))
"""


@pytest.mark.skipif(importlib.util.find_spec("mamba_ssm") is None, reason="mamba-ssm is not installed")
def test_reference_equals_mamba_selective_scan_ref():
    result = subprocess.run([sys.executable, "-c", COMPARE], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, nnUNet_mamba_scan=""))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all equal" in result.stdout

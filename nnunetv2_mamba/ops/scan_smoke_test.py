"""The smoke test of a selective-scan kernel, run in production: before auto picks a kernel backend on a device
(:func:`~.backends.smoke_test_failure`), one test scan forward and backward at the networks' state size and the
kernels' real block sizes must match the reference loop (:mod:`.scan_reference`) there: a kernel that imports can
still fail to compile for this GPU or be miscompiled."""
from __future__ import annotations

import math
from typing import Callable

import torch

from nnunetv2_mamba.ops.scan_reference import selective_scan_reference
from nnunetv2_mamba.ops.tolerances import REORDERED_FP32_RELATIVE_ERROR

#: the smoke test's scan: d_state 16 as in the networks, B/C in 2 groups of 24 channels and L = 150, so that every
#: kernel runs several channel blocks (Triton 4, the C kernel 16 per block) and several time chunks with a partial
#: last one (Triton 32, the C kernel 64 positions)
SMOKE_SHAPE = {"batch": 2, "groups": 2, "channels": 48, "d_state": 16, "length": 150}
#: the largest error a smoke-tested output or gradient may have, relative to the reference's largest magnitude:
#: two fp32 evaluations in other orders differ by at most 2·γ_n of the terms' magnitude (n ≈ 2L + N + b·L ≈ 620
#: roundings for the parameter gradients: 7.4e-5), well inside; a wrong kernel is off by the values' own size
SMOKE_RELATIVE_ERROR = REORDERED_FP32_RELATIVE_ERROR
SCAN_ARGUMENTS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def smoke_test_inputs() -> dict[str, torch.Tensor]:
    """Inputs of the smoke test's scan (:data:`SMOKE_SHAPE`, mamba-ssm's test recipe) and an output gradient."""
    b, G, d, N, L = (SMOKE_SHAPE[k] for k in ("batch", "groups", "channels", "d_state", "length"))
    generator = torch.Generator().manual_seed(0)
    return {"u": torch.randn(b, d, L, generator=generator), "delta": 0.5 * torch.rand(b, d, L, generator=generator),
            "A": -0.5 * torch.rand(d, N, generator=generator), "B": torch.randn(b, G, N, L, generator=generator),
            "C": torch.randn(b, G, N, L, generator=generator), "D": torch.randn(d, generator=generator),
            "z": torch.randn(b, d, L, generator=generator), "delta_bias": 0.5 * torch.rand(d, generator=generator),
            "grad": torch.randn(b, d, L, generator=generator)}


def _forward_backward(scan, inputs: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    """{"y", "du", ...}: one scan (softplus on) on ``device`` and the gradients of <y, grad>."""
    leaves = {k: inputs[k].to(device).requires_grad_() for k in SCAN_ARGUMENTS}
    y = scan(*(leaves[k] for k in SCAN_ARGUMENTS), True, False)
    gradients = torch.autograd.grad(y, list(leaves.values()), inputs["grad"].to(device))
    return {"y": y, **{"d" + k: g for k, g in zip(leaves, gradients)}}


def scan_failure(scan: Callable, device: str) -> str | None:
    """None if ``scan`` (``selective_scan``'s positional signature without ``backend``) gives the reference loop's
    output and gradients on the smoke test's inputs (:data:`SMOKE_SHAPE`) on ``device``, each within
    :data:`SMOKE_RELATIVE_ERROR`; else which one differs and by how much. The caller sets grad mode and autocast."""
    inputs = smoke_test_inputs()
    expected = _forward_backward(selective_scan_reference, inputs, "cpu")
    found = _forward_backward(scan, inputs, device)
    for key, reference in expected.items():
        result = found[key].detach().float().cpu()
        scale = reference.abs().max().item()
        error = (result - reference).abs().max().item() / scale if result.shape == reference.shape else math.inf
        if not error <= SMOKE_RELATIVE_ERROR:
            return (f"a test scan's {key} differs from the reference scan's by {error:.3g} of its largest value "
                    f"(at most {SMOKE_RELATIVE_ERROR:g} allowed)")
    return None

"""Check ``ss2d``: one SS2D layer, forward and backward, with each kernel backend (channels-first sequences, the
fused cross scan on CUDA) against the same layer with the torch scan (channels-last sequences), at the encoder
stage shapes in fp32; both timed.

Both paths compute the same function in fp32 in different orders, so the output, the input gradient and every
parameter gradient must agree to rounding: PASS when max |found - expected| <= REORDERED_FP32_RELATIVE_ERROR
(nnunetv2_mamba/ops/tolerances.py) of max |expected| for each.
"""
from __future__ import annotations

import copy

import pytest
import torch

from nnunetv2_mamba.measurement import median, timed_runs
from nnunetv2_mamba.nets import SS2D
from nnunetv2_mamba.ops.backends import BACKENDS
from nnunetv2_mamba.ops.tolerances import REORDERED_FP32_RELATIVE_ERROR

from gpu_outcome import Outcome, errors, in_ms, milliseconds, ms, worst
from gpu_settings import backend_device, current_settings, scan_backend

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(120)]


def forward_backward(layer: SS2D, x: torch.Tensor, grad: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"out", "dx", "d<parameter>"...} of one SS2D call and its backward."""
    x = x.detach().requires_grad_()
    out = layer(x)
    names, parameters = zip(*layer.named_parameters())
    gradients = torch.autograd.grad(out, (x, *parameters), grad)
    return {"out": out, "dx": gradients[0], **{"d" + n: g for n, g in zip(names, gradients[1:])}}


def cases(settings) -> list:
    params = []
    for name in (n for n in BACKENDS if n != "torch"):
        device, reason = backend_device(name, settings.device)
        if device != settings.device:
            params.append(pytest.param(name, None, marks=pytest.mark.skip(
                reason=reason if device is None else f"runs on {device} only here"), id=name))
            continue
        params += [pytest.param(name, (C, H, W), id=f"{name}, (B, H, W, C) = ({settings.scan_batch}, {H}, {W}, {C})")
                   for C, H, W in settings.stage_shapes()]
    return params


@pytest.mark.parametrize("name,shape", cases(current_settings()))
def test_ss2d_with_a_kernel_backend_matches_the_torch_scan_path(name, shape, settings, report, request):
    report.case(request.node.callspec.id)
    C, H, W = shape
    torch.manual_seed(0)
    device = settings.device
    layer = SS2D(C, d_state=settings.d_state).to(device)
    x = torch.randn(settings.scan_batch, H, W, C, device=device)
    grad = torch.randn(settings.scan_batch, H, W, C, device=device)
    timing = (device, settings.warmup, settings.repeats, settings.max_measure_seconds)
    with scan_backend("torch"):  # a layer keeps the backend it first ran with: one copy per backend
        torch_layer = copy.deepcopy(layer)
        torch_times, expected = timed_runs(lambda: forward_backward(torch_layer, x, grad), *timing)
    with scan_backend(name):
        times, found = timed_runs(lambda: forward_backward(layer, x, grad), *timing)
    table = {key: errors(found[key], expected[key]) for key in expected}
    worst_name, worst_errors = worst(table, "max_rel")
    outcome = Outcome(worst_errors["max_rel"] <= REORDERED_FP32_RELATIVE_ERROR,
                      f"out rel {table['out']['max_rel']:.2g}, dx rel {table['dx']['max_rel']:.2g}; worst "
                      f"{worst_name} rel {worst_errors['max_rel']:.2g} (PASS <= {REORDERED_FP32_RELATIVE_ERROR:g})",
                      f"fwd+bwd {milliseconds(times)}, torch {ms(1e3 * median(torch_times))} ms "
                      f"(= {median(torch_times) / median(times):.2g}x {name})",
                      {"errors": table, "times_ms": in_ms(times), "torch_ms": in_ms(torch_times)})
    report.record(outcome)
    assert outcome.passed, outcome.result

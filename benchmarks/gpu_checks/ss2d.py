"""Check ``ss2d``: one SS2D layer, forward and backward, with each kernel backend (channels-first sequences, the
fused cross scan on CUDA) against the same layer with the torch scan (channels-last sequences), at the encoder
stage shapes in fp32; both timed.

Both paths compute the same function in fp32 in different orders, so the output, the input gradient and every
parameter gradient must agree to rounding: PASS when max |found - expected| <= 1e-3 max |expected| for each.
"""
from __future__ import annotations

import copy

import torch

from nnunetv2_mamba.nets import SS2D
from nnunetv2_mamba.ops.backends import BACKENDS

from gpu_checks.measure import backend_device, errors, median, milliseconds, ms, scan_backend, timed_runs, worst
from gpu_checks.registry import Outcome, register, run_case, skip_row

RELATIVE_TOLERANCE = 1e-3  # of each tensor's largest magnitude


def forward_backward(layer: SS2D, x: torch.Tensor, grad: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"out", "dx", "d<parameter>"...} of one SS2D call and its backward."""
    x = x.detach().requires_grad_()
    out = layer(x)
    names, parameters = zip(*layer.named_parameters())
    gradients = torch.autograd.grad(out, (x, *parameters), grad)
    return {"out": out, "dx": gradients[0], **{"d" + n: g for n, g in zip(names, gradients[1:])}}


def measure(name: str, C: int, H: int, W: int, settings) -> Outcome:
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
    return Outcome(worst_errors["max_rel"] <= RELATIVE_TOLERANCE,
                   f"out rel {table['out']['max_rel']:.2g}, dx rel {table['dx']['max_rel']:.2g}; worst {worst_name} "
                   f"rel {worst_errors['max_rel']:.2g} (PASS <= {RELATIVE_TOLERANCE:g})",
                   f"fwd+bwd {milliseconds(times)}, torch {ms(median(torch_times))} ms "
                   f"(= {median(torch_times) / median(times):.2g}x {name})",
                   {"errors": table, "times_ms": times, "torch_ms": torch_times})


@register("ss2d", "an SS2D layer with each kernel backend against the torch scan's path: fp32 errors, time",
          timeout_s=120)
def ss2d_check(settings):
    for name in BACKENDS:
        if name == "torch":
            continue
        device, reason = backend_device(name, settings.device)
        if device != settings.device:
            yield skip_row("ss2d", name, reason if device is None else f"runs on {device} only here")
            continue
        for C, H, W in settings.stage_shapes():
            case = f"{name}, (B, H, W, C) = ({settings.scan_batch}, {H}, {W}, {C})"
            yield run_case(settings, "ss2d", case, lambda: measure(name, C, H, W, settings))

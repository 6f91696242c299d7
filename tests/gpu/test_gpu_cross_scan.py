"""Check ``cross_scan``: the fused Triton cross scan / merge against their torch definitions, forward and
backward, at the SS2D shapes (B, d_inner = 2C, H, W); both timed.

The cross scan and the merge's backward only move values: they must be equal. The merge and the scan's backward
add four values per pixel in the same order in both ((0 + 2) + (1 + 3)); a half-precision add in Triton may
round once where torch rounds twice, so they may differ by a few units in the last place of the largest term
(nnunetv2_mamba/ops/tolerances.py, ``rounded_sum_bound``).
"""
from __future__ import annotations

import pytest
import torch

from nnunetv2_mamba.measurement import median, timed_runs
from nnunetv2_mamba.ops import cross_merge, cross_scan
from nnunetv2_mamba.ops.tolerances import rounded_sum_bound

from gpu_outcome import Outcome, errors, in_ms, milliseconds, ms
from gpu_settings import DTYPES, backend_device, current_settings

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(90)]
MOVED = ("scanned", "dys")  # permutations of their inputs
SUMMED = ("merged", "dx")  # sums of four values


def cross_inputs(batch: int, channels: int, H: int, W: int, dtype: str, device: str) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    shapes = {"x": (batch, channels, H, W), "ys": (batch, 4, channels, H * W),
              "grad_scanned": (batch, 4, channels, H * W), "grad_merged": (batch, channels, H * W)}
    return {name: torch.randn(shape, generator=generator).to(device, DTYPES[dtype]) for name, shape in shapes.items()}


def forward_backward(scan, merge, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cross scan of x and cross merge of ys, and the gradients of both."""
    x, ys = inputs["x"].detach().requires_grad_(), inputs["ys"].detach().requires_grad_()
    H, W = x.shape[2:]
    scanned, merged = scan(x), merge(ys, H, W)
    (dx,) = torch.autograd.grad(scanned, x, inputs["grad_scanned"])
    (dys,) = torch.autograd.grad(merged, ys, inputs["grad_merged"])
    return {"scanned": scanned, "merged": merged, "dx": dx, "dys": dys}


def cases(settings) -> list:
    device, reason = backend_device("triton", settings.device)
    if device != settings.device:
        return [pytest.param(None, None, marks=pytest.mark.skip(
            reason=reason if device is None else f"Triton runs on {device} only here"), id="triton")]
    return [pytest.param(dtype, (C, H, W), id=f"{dtype}, (B, C, H, W) = ({settings.scan_batch}, {2 * C}, {H}, {W})")
            for C, H, W in settings.stage_shapes() for dtype in settings.kernel_dtypes]


@pytest.mark.parametrize("dtype,shape", cases(current_settings()))
def test_fused_cross_scan_matches_the_torch_functions(dtype, shape, settings, report, request):
    report.case(request.node.callspec.id)
    from nnunetv2_mamba.ops.cross_scan_triton import cross_merge_triton, cross_scan_triton
    C, H, W = shape
    device = settings.device
    inputs = cross_inputs(settings.scan_batch, 2 * C, H, W, dtype, device)
    timing = (device, settings.warmup, settings.repeats, settings.max_measure_seconds)
    fused_times, found = timed_runs(lambda: forward_backward(cross_scan_triton, cross_merge_triton, inputs), *timing)
    torch_times, expected = timed_runs(lambda: forward_backward(cross_scan, cross_merge, inputs), *timing)
    largest_term = max(inputs[name].abs().max().item() for name in ("ys", "grad_scanned"))
    rounding = rounded_sum_bound(DTYPES[dtype], largest_term)
    table = {key: errors(found[key], expected[key], 0.0, 0.0 if key in MOVED else rounding)
             for key in MOVED + SUMMED}
    passed = all(table[key]["tol_ratio"] <= 1 for key in table)
    moved = "equal" if all(table[key]["max_abs"] == 0 for key in MOVED) else "NOT equal"
    summed = max(table[key]["max_abs"] for key in SUMMED)
    outcome = Outcome(passed, f"scan and merge's backward {moved}; merge and scan's backward max abs {summed:.2g} "
                              f"(bound {rounding:.2g})",
                      f"fused {milliseconds(fused_times)}, torch {ms(1e3 * median(torch_times))} ms "
                      f"(= {median(torch_times) / median(fused_times):.2g}x fused)",
                      {"errors": table, "fused_ms": in_ms(fused_times), "torch_ms": in_ms(torch_times)})
    report.record(outcome)
    assert outcome.passed, outcome.result

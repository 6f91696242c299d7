"""Check ``cross_scan``: the fused Triton cross scan / merge against their torch definitions, forward and
backward, at the SS2D shapes (B, d_inner = 2C, H, W); both timed.

The cross scan and the merge's backward only move values: they must be equal. The merge and the scan's backward
add four values per pixel in the same order in both ((0 + 2) + (1 + 3)); a half-precision add in Triton may
round once where torch rounds twice, so they may differ by a few units in the last place: PASS within
8 eps(dtype) max |term|.
"""
from __future__ import annotations

import torch

from nnunetv2_mamba.ops import cross_merge, cross_scan

from gpu_checks.measure import DTYPES, backend_device, errors, median, milliseconds, ms, timed_runs
from gpu_checks.registry import Outcome, register, run_case, skip_row

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


def measure(inputs: dict, dtype: str, settings, device: str) -> Outcome:
    from nnunetv2_mamba.ops.cross_scan_triton import cross_merge_triton, cross_scan_triton
    timing = (device, settings.warmup, settings.repeats, settings.max_measure_seconds)
    fused_times, found = timed_runs(lambda: forward_backward(cross_scan_triton, cross_merge_triton, inputs), *timing)
    torch_times, expected = timed_runs(lambda: forward_backward(cross_scan, cross_merge, inputs), *timing)
    largest_term = max(inputs[name].abs().max().item() for name in ("ys", "grad_scanned"))
    rounding = 8 * torch.finfo(DTYPES[dtype]).eps * largest_term
    table = {key: errors(found[key], expected[key], 0.0, 0.0 if key in MOVED else rounding)
             for key in MOVED + SUMMED}
    passed = all(table[key]["tol_ratio"] <= 1 for key in table)
    moved = "equal" if all(table[key]["max_abs"] == 0 for key in MOVED) else "NOT equal"
    summed = max(table[key]["max_abs"] for key in SUMMED)
    return Outcome(passed, f"scan and merge's backward {moved}; merge and scan's backward max abs {summed:.2g} "
                           f"(bound {rounding:.2g})",
                   f"fused {milliseconds(fused_times)}, torch {ms(median(torch_times))} ms "
                   f"(= {median(torch_times) / median(fused_times):.2g}x fused)",
                   {"errors": table, "fused_ms": fused_times, "torch_ms": torch_times})


@register("cross_scan", "fused Triton cross scan / merge against the torch functions: equality, time", timeout_s=90)
def cross_scan_check(settings):
    device, reason = backend_device("triton", settings.device)
    if device != settings.device:
        yield skip_row("cross_scan", "triton", reason if device is None else f"Triton runs on {device} only here")
        return
    for C, H, W in settings.stage_shapes():
        for dtype in settings.kernel_dtypes:
            case = f"{dtype}, (B, C, H, W) = ({settings.scan_batch}, {2 * C}, {H}, {W})"
            yield run_case(settings, "cross_scan", case, lambda: measure(
                cross_inputs(settings.scan_batch, 2 * C, H, W, dtype, device), dtype, settings, device))

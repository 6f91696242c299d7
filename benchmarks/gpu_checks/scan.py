"""Check ``scan``: every available selective-scan backend against the torch scan in fp32, forward and backward, at
the SS2D shapes of the 2d networks, in each dtype; errors and time.

Inputs follow mamba-ssm's ``test_selective_scan`` (A = -0.5 rand, delta = 0.5 rand, delta_bias = 0.5 rand, the
rest randn; u, delta, B, C and the output gradient in the dtype, A, D, delta_bias in fp32) with SS2D's options:
B/C in one group per direction, D, delta_bias, softplus, no z. The reference is the torch scan run in fp32 on the
same (rounded) inputs on the backend's device; the torch scan itself is compared with the sequential reference
loop ``selective_scan_reference``. Tolerances are that test's: per output and gradient, PASS when every
|found - expected| <= atol + rtol |expected|.
"""
from __future__ import annotations

import torch

from nnunetv2_mamba.ops.backends import BACKENDS, availability
from nnunetv2_mamba.ops.scan_reference import selective_scan_reference

from gpu_checks.measure import (DTYPES, backend_device, errors, median, milliseconds, peak_memory, timed_runs,
                                worst)
from gpu_checks.registry import Outcome, register, run_case, skip_row
from gpu_checks.settings import DIRECTIONS

DIFFERENTIABLE = ("u", "delta", "A", "B", "C", "D", "delta_bias")
IN_DTYPE = ("u", "delta", "B", "C")  # inputs given in the dtype under test; A, D, delta_bias stay fp32
DTYPE_TOLERANCES = {"float32": (6e-4, 2e-3), "float16": (3e-3, 5e-3), "bfloat16": (3e-2, 5e-2)}
WEIGHT_TOLERANCES = (1e-3, 1e-3)


def tolerances(dtype: str) -> dict[str, tuple[float, float]]:
    """mamba-ssm's test_selective_scan (rtol, atol) without z, per output and gradient."""
    rtol, atol = DTYPE_TOLERANCES[dtype]
    rtolw, atolw = WEIGHT_TOLERANCES
    return {"out": (rtol, atol), "du": (2 * rtol, 2 * atol), "ddelta": (5 * rtol, 10 * atol), "dA": (rtolw, 5 * atolw),
            "dB": (rtol, atol), "dC": (rtol, atol), "dD": (rtolw, atolw), "ddelta_bias": (rtolw, atolw)}


def scan_inputs(batch: int, channels: int, length: int, d_state: int, device: str) -> dict[str, torch.Tensor]:
    """fp32 inputs of one SS2D scan (four B/C groups, one per direction) and an output gradient "grad"."""
    generator = torch.Generator().manual_seed(0)
    groups = (batch, DIRECTIONS, d_state, length)
    tensors = {"u": torch.randn(batch, channels, length, generator=generator),
               "delta": 0.5 * torch.rand(batch, channels, length, generator=generator),
               "A": -0.5 * torch.rand(channels, d_state, generator=generator),
               "B": torch.randn(groups, generator=generator), "C": torch.randn(groups, generator=generator),
               "D": torch.randn(channels, generator=generator),
               "delta_bias": 0.5 * torch.rand(channels, generator=generator),
               "grad": torch.randn(batch, channels, length, generator=generator)}
    return {name: tensor.to(device) for name, tensor in tensors.items()}


def in_dtype(inputs: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """The inputs as the dtype under test sees them (u, delta, B, C and the gradient rounded to it)."""
    return {name: t.to(DTYPES[dtype]) if name in IN_DTYPE + ("grad",) else t for name, t in inputs.items()}


def as_fp32(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.float() for name, t in inputs.items()}


def forward_backward(scan, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{"out", "du", "ddelta", ...} of one scan call (SS2D's options) and its backward."""
    leaves = {name: inputs[name].detach().requires_grad_() for name in DIFFERENTIABLE}
    out = scan(leaves["u"], leaves["delta"], leaves["A"], leaves["B"], leaves["C"], leaves["D"], None,
               leaves["delta_bias"], True, False)
    gradients = torch.autograd.grad(out, [leaves[name] for name in DIFFERENTIABLE], inputs["grad"])
    return {"out": out, **{"d" + name: g for name, g in zip(DIFFERENTIABLE, gradients)}}


def compare(found: dict, expected: dict, dtype: str) -> dict[str, dict]:
    return {key: errors(found[key], expected[key], *rtol_atol) for key, rtol_atol in tolerances(dtype).items()}


def summary(table: dict[str, dict]) -> tuple[bool, str]:
    """(all within tolerance, "out abs .. rel ..; worst dX: .. of the tolerance")."""
    name, worst_errors = worst(table, "tol_ratio")
    out = table["out"]
    return worst_errors["tol_ratio"] <= 1, (
        f"out abs {out['max_abs']:.2g} rel {out['max_rel']:.2g}; worst {name}: abs {worst_errors['max_abs']:.2g} "
        f"rel {worst_errors['max_rel']:.2g}, {worst_errors['tol_ratio']:.2g} x tolerance")


def measure_backend(name: str, device: str, dtype: str, references: "References", settings,
                    torch_fp32_ms: float | None) -> Outcome:
    """One backend, dtype and shape: time its forward + backward, compare its last result with the reference."""
    reference = references.get(name, dtype)
    function = availability(name).function
    candidate_inputs = in_dtype(references.inputs, dtype)
    with peak_memory(device) as memory:
        times, found = timed_runs(lambda: forward_backward(function, candidate_inputs), device, settings.warmup,
                                  settings.repeats, settings.max_measure_seconds)
    if found["out"].dtype != DTYPES[dtype]:
        return Outcome(False, f"output dtype {found['out'].dtype}, expected {DTYPES[dtype]} (delta's)")
    table = compare(found, reference, dtype)
    passed, text = summary(table)
    speed = f", speed-up over the torch scan in fp32 {torch_fp32_ms / median(times):.2g}x" if torch_fp32_ms else ""
    return Outcome(passed, text, f"fwd+bwd {milliseconds(times)}{speed}",
                   {"errors": table, "times_ms": times, **memory})


def runnable_backends(settings) -> tuple[list[tuple[str, str]], list]:
    """([(backend, device)] with torch first, [SKIP rows of the backends that cannot run here])."""
    runnable, skipped = [], []
    for name in sorted(BACKENDS, key=lambda n: n != "torch"):
        device, reason = backend_device(name, settings.device)
        if device is None:
            skipped.append(skip_row("scan", name, reason))
        else:
            runnable.append((name, device))
    return runnable, skipped


def dtypes_for(name: str, device: str, settings) -> tuple[str, ...]:
    """All dtypes on the device under test (kernels: ``kernel_dtypes``); fp32 only on the CPU beside a GPU, where
    no autocast runs and SS2D always scans in fp32."""
    if device != settings.device:
        return ("float32",)
    return settings.dtypes if name == "torch" else settings.kernel_dtypes


class References:
    """The fp32 reference results of one shape and device, per dtype, computed on first need (inside a case, so
    that a failure to compute one is that case's FAIL): the sequential loop for the torch scan in fp32 (the
    yardstick), the torch scan in fp32 for everything else."""

    def __init__(self, inputs: dict[str, torch.Tensor]):
        self.inputs, self.results = inputs, {}

    @staticmethod
    def kind(name: str, dtype: str) -> str:
        return "sequential reference loop" if name == "torch" and dtype == "float32" else "torch fp32"

    def get(self, name: str, dtype: str) -> dict[str, torch.Tensor]:
        key = (self.kind(name, dtype), dtype)
        if key not in self.results:
            scan = selective_scan_reference if key[0].startswith("sequential") else availability("torch").function
            found = forward_backward(scan, as_fp32(in_dtype(self.inputs, dtype)))
            self.results[key] = {k: v.detach().float() for k, v in found.items()}
        return self.results[key]


@register("scan", "every scan backend against the torch scan in fp32 at the SS2D shapes: errors, fwd+bwd time",
          timeout_s=200)
def scan_backends(settings):
    runnable, skipped = runnable_backends(settings)
    yield from skipped
    for C, H, W in settings.stage_shapes():
        channels, length = DIRECTIONS * 2 * C, H * W
        where = f"d={channels} L={length} (C={C}, {H}x{W}, B={settings.scan_batch}, N={settings.d_state})"
        for device in dict.fromkeys(device for _, device in runnable):
            references = References(scan_inputs(settings.scan_batch, channels, length, settings.d_state, device))
            torch_fp32_ms = None
            for dtype in settings.dtypes:
                for name in (n for n, d in runnable if d == device and dtype in dtypes_for(n, d, settings)):
                    case = f"{name} {dtype} on {device}, {where}, vs {References.kind(name, dtype)}"
                    row = run_case(settings, "scan", case, lambda: measure_backend(
                        name, device, dtype, references, settings, torch_fp32_ms))
                    if name == "torch" and dtype == "float32" and row.data.get("times_ms"):
                        torch_fp32_ms = median(row.data["times_ms"])
                    yield row

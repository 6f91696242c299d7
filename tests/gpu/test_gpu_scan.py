"""Check ``scan``: every available selective-scan backend against the torch scan in fp32, forward and backward, at
the SS2D shapes of the 2d networks, in each dtype; errors and time.

Inputs follow mamba-ssm's ``test_selective_scan`` (A = -0.5 rand, delta = 0.5 rand, delta_bias = 0.5 rand, the
rest randn; u, delta, B, C and the output gradient in the dtype, A, D, delta_bias in fp32) with SS2D's options:
B/C in one group per direction, D, delta_bias, softplus, no z. The reference is the torch scan run in fp32 on the
same (rounded) inputs on the backend's device; the torch scan itself is compared with the sequential reference
loop ``selective_scan_reference``. Tolerances are that test's (nnunetv2_mamba/ops/tolerances.py): per output and
gradient, PASS when every |found - expected| <= atol + rtol |expected|.
"""
from __future__ import annotations

import pytest
import torch

from nnunetv2_mamba.measurement import median, peak_memory, timed_runs
from nnunetv2_mamba.ops.backends import BACKENDS, availability
from nnunetv2_mamba.ops.scan_reference import selective_scan_reference

from gpu_outcome import Outcome, in_ms, milliseconds
from gpu_scan import as_fp32, compare, forward_backward, in_dtype, scan_inputs, summary
from gpu_settings import DIRECTIONS, DTYPES, backend_device, current_settings

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(200)]


def reference_kind(name: str, dtype: str) -> str:
    return "sequential reference loop" if name == "torch" and dtype == "float32" else "torch fp32"


_REFERENCES: dict = {}  # the fp32 references of the current shape and device, per kind and dtype
_TORCH_FP32_SECONDS: dict = {}  # (shape, device) -> the torch scan's fp32 median, for the speed-ups


def reference(inputs: dict[str, torch.Tensor], key: tuple, name: str, dtype: str) -> dict[str, torch.Tensor]:
    """The sequential loop's fp32 result for the torch scan in fp32 (the yardstick), the torch scan's in fp32 for
    everything else; computed once per shape, device and dtype (inside a case: failing to compute one is that
    case's failure)."""
    kind = reference_kind(name, dtype)
    if not any(cached[0] == key for cached in _REFERENCES):
        _REFERENCES.clear()
    if (key, kind, dtype) not in _REFERENCES:
        scan = selective_scan_reference if kind.startswith("sequential") else availability("torch").function
        found = forward_backward(scan, as_fp32(in_dtype(inputs, dtype)))
        _REFERENCES[key, kind, dtype] = {k: v.detach().float() for k, v in found.items()}
    return _REFERENCES[key, kind, dtype]


def dtypes_for(name: str, device: str, settings) -> tuple[str, ...]:
    """All dtypes on the device under test (kernels: ``kernel_dtypes``); fp32 only on the CPU beside a GPU, where
    no autocast runs and SS2D always scans in fp32."""
    if device != settings.device:
        return ("float32",)
    return settings.dtypes if name == "torch" else settings.kernel_dtypes


def cases(settings) -> list:
    """The backends that cannot run here (one SKIP each), then per shape, device and dtype each backend, torch
    first."""
    runnable, params = [], []
    for name in sorted(BACKENDS, key=lambda n: n != "torch"):
        device, reason = backend_device(name, settings.device)
        if device is None:
            params.append(pytest.param(name, None, None, None, marks=pytest.mark.skip(reason=reason), id=name))
        else:
            runnable.append((name, device))
    for C, H, W in settings.stage_shapes():
        where = (f"d={DIRECTIONS * 2 * C} L={H * W} (C={C}, {H}x{W}, B={settings.scan_batch}, "
                 f"N={settings.d_state})")
        for device in dict.fromkeys(device for _, device in runnable):
            for dtype in settings.dtypes:
                for name in (n for n, d in runnable if d == device and dtype in dtypes_for(n, d, settings)):
                    case = f"{name} {dtype} on {device}, {where}, vs {reference_kind(name, dtype)}"
                    params.append(pytest.param(name, device, dtype, (C, H, W), id=case))
    return params


@pytest.mark.parametrize("name,device,dtype,shape", cases(current_settings()))
def test_scan_backend_matches_the_torch_scan(name, device, dtype, shape, settings, report, request):
    """One backend, dtype and shape: its forward + backward against the reference, and its time."""
    report.case(request.node.callspec.id)
    C, H, W = shape
    key = (shape, device)
    inputs = scan_inputs(settings.scan_batch, DIRECTIONS * 2 * C, H * W, settings.d_state, device)
    expected = reference(inputs, key, name, dtype)
    function = availability(name).function
    candidate_inputs = in_dtype(inputs, dtype)
    with peak_memory(device) as memory:
        times, found = timed_runs(lambda: forward_backward(function, candidate_inputs), device, settings.warmup,
                                  settings.repeats, settings.max_measure_seconds)
    if name == "torch" and dtype == "float32":
        _TORCH_FP32_SECONDS[key] = median(times)
    if found["out"].dtype != DTYPES[dtype]:
        outcome = Outcome(False, f"output dtype {found['out'].dtype}, expected {DTYPES[dtype]} (delta's)")
    else:
        table = compare(found, expected, dtype)
        passed, text = summary(table)
        torch_fp32 = _TORCH_FP32_SECONDS.get(key) if (name, dtype) != ("torch", "float32") else None
        speed = f", speed-up over the torch scan in fp32 {torch_fp32 / median(times):.2g}x" if torch_fp32 else ""
        cuda_memory = {"peak_mib": memory.peak_mib, "base_mib": memory.base_mib} if device == "cuda" else {}
        outcome = Outcome(passed, text, f"fwd+bwd {milliseconds(times)}{speed}",
                          {"errors": table, "times_ms": in_ms(times), **cuda_memory})
    report.record(outcome)
    assert outcome.passed, outcome.result

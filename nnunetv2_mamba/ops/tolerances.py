"""The tolerances every comparison of a scan, a cross scan or a Mamba layer with its reference uses: the backends'
smoke test (ops/backends.py), the CPU tests (tests/) and the GPU checks (tests/gpu/). One place, so that a kernel
is held to the same bound wherever it is checked.

- :func:`scan_tolerances`: mamba-ssm's ``tests/ops/test_selective_scan.py`` (rtol, atol) per output, last state and
  gradient, for fp32, fp16 and bf16 inputs: the compatibility contract with mamba-ssm's kernel. In fp32 they bound
  the error of any summation order for the lengths the networks scan (tests/helpers.py derives why); for half
  inputs they also cover the final rounding of the output to the half dtype (one ulp).
- :data:`REORDERED_FP32_RELATIVE_ERROR`: two fp32 evaluations of one function in other orders (a kernel backend
  against the torch scan, one SS2D layer on two code paths), relative to the reference's largest magnitude: they
  differ by at most 2·γ_n of the terms' magnitude (n ≈ 2L + N + b·L ≈ 620 roundings for the smoke test's parameter
  gradients: 7.4e-5), well inside; a wrong kernel is off by the values' own size.
- :func:`rounded_sum_bound`: a sum of four values per element that one code path rounds once and another twice
  (the fused cross merge in half precision): a few units in the last place of the largest term.
- :data:`COMPILED_STEP_RELATIVE_ERROR`, :data:`COMPILED_PROBABILITY_ERROR`: torch.compile'd against eager under
  AMP, where Inductor's fused kernels round the half-precision intermediates in another order.
"""
from __future__ import annotations

import torch

#: mamba-ssm's test_selective_scan (rtol, atol) of the output and the last state per input dtype
DTYPE_TOLERANCES = {torch.float32: (6e-4, 2e-3), torch.float16: (3e-3, 5e-3), torch.bfloat16: (3e-2, 5e-2)}
#: its (rtol, atol) of the weights' gradients (dA, dD, dz, ddelta_bias) without z; with z at least the output's
WEIGHT_TOLERANCES = (1e-3, 1e-3)
#: relative to the reference's largest magnitude, see the module docstring
REORDERED_FP32_RELATIVE_ERROR = 1e-3
COMPILED_STEP_RELATIVE_ERROR = 2e-2  # loss and each gradient, relative to the tensor's largest magnitude
COMPILED_PROBABILITY_ERROR = 1e-2  # class probabilities, absolute
ROUNDING_ULPS = 8  # of the largest term, for a four-term sum rounded once or twice


def scan_tolerances(dtype: torch.dtype = torch.float32, has_z: bool = True) -> dict[str, tuple[float, float]]:
    """(rtol, atol) of the scan's ``out`` and ``state`` and of the gradient of each input (keyed by the input's
    name: ``u``, ``delta``, ``A``, ``B``, ``C``, ``D``, ``z``, ``delta_bias``) for inputs of ``dtype``, as
    mamba-ssm's test_selective_scan sets them (``has_z``: the test's tolerances when the gate z is given)."""
    if dtype not in DTYPE_TOLERANCES:
        raise ValueError(f"no scan tolerances for {dtype}: use one of {', '.join(map(str, DTYPE_TOLERANCES))}")
    rtol, atol = DTYPE_TOLERANCES[dtype]
    rtolw, atolw = (max(WEIGHT_TOLERANCES[0], rtol), max(WEIGHT_TOLERANCES[1], atol)) if has_z else WEIGHT_TOLERANCES
    return {"out": (rtol, atol), "state": (rtol, atol), "u": (2 * rtol, 2 * atol), "delta": (5 * rtol, 10 * atol),
            "A": (rtolw, 5 * atolw), "B": (rtol, atol), "C": (rtol, atol), "D": (rtolw, atolw), "z": (rtolw, atolw),
            "delta_bias": (rtolw, atolw)}


def rounded_sum_bound(dtype: torch.dtype, largest_term: float) -> float:
    """Absolute bound on two roundings of one four-term sum in ``dtype``: ROUNDING_ULPS eps of the largest term."""
    return ROUNDING_ULPS * torch.finfo(dtype).eps * largest_term

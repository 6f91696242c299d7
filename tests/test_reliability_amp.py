"""Mixed precision on CPU: the selective scan and SS2D, with each CPU backend (torch, cpu), under fp16 / bf16
autocast stay finite, in outputs and gradients, over seeded random inputs of up to large magnitudes, and agree
with fp32.

Tolerances. Inside autocast the scan receives half-precision tensors (as SS2D's projections would give it) but
computes in fp32 and rounds only its output to the half dtype. So against the fp32 reference scan of the *same*
(half-rounded) numbers the error is one rounding of the output, eps/2 relative (fp16: 2^-11, bf16: 2^-8), plus
the fp32 scan's own error, for which mamba-ssm's fp32 tolerances (rtol 6e-4, atol 2e-3) are used, with atol
measured relative to the output's largest magnitude (the inputs reach 1e3, so the output scale varies by 1e9):
why they bound the fp32 error on any CPU is in tests/helpers.py (the large Δ drawn here only make the decays
smaller, and a decay's error shrinks with it).
SS2D's half-precision projections round every activation, so SS2D is compared with its fp32 forward relative to
the output's largest magnitude: 2 % for fp16, 8 % for bf16. On its longest chain about 18 values are rounded to the
half dtype (the input, weight and output of each of the 5 projections, SiLU and the gating product), each by at
most its unit roundoff u = eps/2: γ_18 ≈ 0.9 % for fp16 (u = 2^-11), 7 % for bf16 (u = 2^-8).
A value whose exact result does not fit in fp16 (above 65504) cannot be finite in fp16 whatever the kernel does:
fp16 inputs are drawn up to 1e2 per tensor (bf16, with fp32's range, up to 1e3), and the draws whose fp32
result or gradients still exceed half of fp16's range are left out with ``assume`` (hypothesis then draws more,
so each dtype gets its full count of checked cases).
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from nnunetv2_mamba.nets.ss2d import SS2D
from nnunetv2_mamba.ops import selective_scan, selective_scan_reference
from nnunetv2_mamba.ops.backends import availability

HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}
SCAN_CASES = 500  # per dtype: 1000 scans
SS2D_CASES = 40  # per dtype
FUZZ = dict(derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
MAGNITUDES = st.sampled_from([1e-3, 1.0, 10.0, 1e2, 1e3])


@st.composite
def scan_inputs(draw, largest: float = 1e3):
    """Shapes of one SS2D scan in small, values from N(0, 1) times a drawn magnitude (up to ``largest``) per
    tensor."""
    batch, dim, d_state, length = (draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 8)),
                                   draw(st.integers(1, 70)))
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if dim % g == 0]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 31)))

    def randn(*shape, scale=None):
        magnitude = draw(MAGNITUDES.filter(lambda m: m <= largest)) if scale is None else scale
        return torch.randn(*shape, generator=gen) * magnitude

    return {"u": randn(batch, dim, length), "delta": randn(batch, dim, length, scale=draw(st.sampled_from([1, 10, 50]))),
            "A": -torch.exp(randn(dim, d_state, scale=2.0)), "B": randn(batch, groups, d_state, length),
            "C": randn(batch, groups, d_state, length), "D": randn(dim), "z": randn(batch, dim, length),
            "delta_bias": randn(dim, scale=1.0)}


@pytest.fixture(params=["torch", "cpu"])
def backend(request, monkeypatch) -> str:
    """Each CPU backend, also as $nnUNet_mamba_scan (for SS2D)."""
    if not availability(request.param).available:
        pytest.skip(f"backend {request.param} unavailable: {availability(request.param).reason}")
    monkeypatch.setenv("nnUNet_mamba_scan", request.param)
    return request.param


def fits(values: torch.Tensor, dtype: torch.dtype) -> bool:
    return bool(values.abs().max() < torch.finfo(dtype).max / 2)


def scan_with_grads(inputs: dict, grad_out: torch.Tensor, dtype=None, backend=None):
    """y and d<y, grad_out>/d(every input) from the reference, or with ``dtype`` from ``backend``; inputs cast to
    ``dtype`` (A, D, delta_bias stay fp32 parameters)."""
    leaves = {k: (v.to(dtype) if dtype and k in "u delta B C z" else v).detach().requires_grad_()
              for k, v in inputs.items()}
    scan = selective_scan_reference if dtype is None else selective_scan
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        y = scan(**leaves, delta_softplus=True, **({} if dtype is None else {"backend": backend}))
        grads = torch.autograd.grad(y, list(leaves.values()), grad_out.to(y.dtype))
    return y, dict(zip(leaves, grads)), leaves


@pytest.mark.parametrize("name,largest", [("fp16", 1e2), ("bf16", 1e3)])
def test_scan_under_autocast_is_finite_and_matches_fp32(name, largest, backend):
    dtype = HALF[name]
    eps = torch.finfo(dtype).eps

    @settings(max_examples=SCAN_CASES, **FUZZ)
    @given(scan_inputs(largest))
    def check(inputs):
        grad_out = torch.randn(inputs["u"].shape, generator=torch.Generator().manual_seed(1))
        y, grads, leaves = scan_with_grads(inputs, grad_out, dtype, backend)
        rounded = {k: v.detach().float() for k, v in leaves.items()}
        y_ref, grads_ref, _ = scan_with_grads(rounded, grad_out.to(dtype).float())
        assume(fits(y_ref, dtype) and all(fits(g, dtype) for g in grads_ref.values()))
        assert y.dtype == dtype and torch.isfinite(y).all()
        assert all(torch.isfinite(g).all() for g in grads.values())
        scale = y_ref.abs().max().item()
        torch.testing.assert_close(y.float(), y_ref, rtol=eps / 2 + 6e-4, atol=2e-3 * max(scale, 1.0))
        for key, grad in grads.items():
            ref = grads_ref[key]
            atol = 2e-2 * max(ref.abs().max().item(), 1.0)  # mamba-ssm's loosest fp32 gradient atol, relative
            torch.testing.assert_close(grad.float(), ref, rtol=eps / 2 + 3e-3, atol=atol, msg=lambda m: f"d{key}: {m}")

    check()


@pytest.mark.parametrize("name,tolerance,largest", [("fp16", 2e-2, 1e2), ("bf16", 8e-2, 1e3)])
def test_ss2d_under_autocast_is_finite_and_matches_fp32(name, tolerance, largest, backend):
    """SS2D's input is LayerNorm-ed in a VSS block; in fp16 inputs of 1e3 overflow weight gradients (x^T dy) of
    the half-precision projections: that is what GradScaler (CUDA) and the trainers' non-finite step guard are
    for, so fp16 is fuzzed up to 1e2, bf16 (fp32's range) up to 1e3."""
    dtype = HALF[name]
    torch.manual_seed(0)
    block = SS2D(8, d_state=4)

    @settings(max_examples=SS2D_CASES, **FUZZ)
    @given(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9), MAGNITUDES.filter(lambda m: m <= largest),
           st.integers(0, 2 ** 31))
    def check(batch, height, width, magnitude, seed):
        x = torch.randn(batch, height, width, 8, generator=torch.Generator().manual_seed(seed)) * magnitude
        reference = block(x)
        assume(fits(reference, dtype))
        block.zero_grad(set_to_none=True)
        x.requires_grad_()
        with torch.autocast("cpu", dtype=dtype):
            out = block(x)
        out.float().square().mean().backward()
        assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in block.parameters())
        scale = reference.abs().max().item()
        torch.testing.assert_close(out.float(), reference, rtol=tolerance, atol=tolerance * max(scale, 1e-3))

    check()

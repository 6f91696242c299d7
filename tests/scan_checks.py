"""The selective scan against the reference loop, forward and backward, at mamba-ssm's own fp32 test tolerances:
the checks the torch and cpu scan tests share (test_ops_scan_torch.py, test_ops_scan_cpu.py)."""
import torch

from nnunetv2_mamba.ops import selective_scan, selective_scan_reference
from nnunetv2_mamba.ops.scan_torch import selective_scan_torch
from nnunetv2_mamba.ops.tolerances import DTYPE_TOLERANCES, scan_tolerances
from helpers import make_scan_inputs

# mamba-ssm's fp32 test tolerances (with z), per output and input gradient; why they bound the fp32 error of any
# summation order, so hold on any CPU: tests/helpers.py
TOLERANCES = scan_tolerances(torch.float32)


def run_with_grads(scan, inputs, delta_softplus, return_last_state, grad_out):
    """Output, optional last state and the gradient of <out, grad_out> w.r.t. every given input."""
    result = scan(**inputs, delta_softplus=delta_softplus, return_last_state=return_last_state)
    out, state = result if return_last_state else (result, None)
    given = {k: v for k, v in inputs.items() if v is not None}
    grads = torch.autograd.grad(out, list(given.values()), grad_out)
    return out, state, dict(zip(given, grads))


def assert_matches_reference(inputs, delta_softplus=True, return_last_state=True, scan=selective_scan_torch):
    out_shape = inputs["u"].shape
    grad_out = torch.randn(out_shape, generator=torch.Generator().manual_seed(1))
    ours = run_with_grads(scan, inputs, delta_softplus, return_last_state, grad_out)
    ref = run_with_grads(selective_scan_reference, inputs, delta_softplus, return_last_state, grad_out)
    torch.testing.assert_close(ours[0], ref[0], rtol=TOLERANCES["out"][0], atol=TOLERANCES["out"][1])
    if return_last_state:
        assert ours[1].dtype == torch.float32 and ours[1].shape == (out_shape[0], out_shape[1], inputs["A"].shape[1])
        torch.testing.assert_close(ours[1], ref[1], rtol=TOLERANCES["state"][0], atol=TOLERANCES["state"][1])
    assert ours[2].keys() == ref[2].keys()
    for name in ours[2]:
        rtol, atol = TOLERANCES[name]
        torch.testing.assert_close(ours[2][name], ref[2][name], rtol=rtol, atol=atol, msg=lambda m: f"d{name}: {m}")


OPTION_COMBINATIONS = [  # has_D, has_z, has_delta_bias, delta_softplus, return_last_state
    (False, False, False, False, False),
    (True, False, False, False, False),
    (False, True, False, False, True),
    (False, False, True, False, False),
    (False, False, False, True, True),
    (True, True, False, True, False),
    (False, True, True, False, True),
]


def saved_tensor_sizes(out: torch.Tensor) -> list[int]:
    """Element counts of every tensor the autograd graph behind ``out`` saved for the backward."""
    node, seen, saved = out.grad_fn, set(), []
    stack = [node]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        saved += [getattr(node, a) for a in dir(node) if a.startswith("_saved_")]
        saved += list(getattr(node, "saved_tensors", ()) or ())
        stack += [n for n, _ in node.next_functions]
    return [t.numel() for t in saved if isinstance(t, torch.Tensor)]


def assert_half_inputs_compute_in_fp32(dtype: torch.dtype, backend: str) -> None:
    """Half inputs: output in delta's dtype, state fp32, values equal to the fp32 scan of the same numbers."""
    inputs = make_scan_inputs(200, groups=2, dtype=dtype)
    out, state = selective_scan(**inputs, delta_softplus=True, return_last_state=True, backend=backend)
    assert out.dtype == dtype and state.dtype == torch.float32
    upcast = {k: (v.detach().float() if v is not None else None) for k, v in inputs.items()}
    ref_out, ref_state = selective_scan_reference(**upcast, delta_softplus=True, return_last_state=True)
    # both compute in fp32 from the same half-rounded numbers: the state to fp32's tolerances; each output is then
    # rounded to the half dtype, where two fp32 values that close can land one ulp apart (bf16 2^-7 relative,
    # fp16 2^-10): within mamba-ssm's bf16 tolerances, used for both
    torch.testing.assert_close(state, ref_state, rtol=TOLERANCES["state"][0], atol=TOLERANCES["state"][1])
    rtol, atol = DTYPE_TOLERANCES[torch.bfloat16]
    torch.testing.assert_close(out.float(), ref_out.to(dtype).float(), rtol=rtol, atol=atol)
    out.float().sum().backward()
    assert inputs["u"].grad.dtype == dtype and torch.isfinite(inputs["u"].grad.float()).all()


def assert_autocast_runs_the_scan_in_fp32(backend: str) -> None:
    """Under bf16 autocast the scan still computes (and returns) fp32: fp32's tolerances against the reference."""
    inputs = make_scan_inputs(128, groups=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = selective_scan(**inputs, delta_softplus=True, backend=backend)
    ref = selective_scan_reference(**inputs, delta_softplus=True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=TOLERANCES["out"][0], atol=TOLERANCES["out"][1])

"""The half-precision part of mamba-ssm's own selective-scan test grid, against our CPU backends (torch, cpu).

mamba-ssm's ``tests/ops/test_selective_scan.py`` runs itype in (fp32, fp16, bf16) x seqlen in (128 ... 4096) x
varBC_groups in (1, 2), with D, z, delta_bias, softplus and the last state on, and variable B/C. The fp32 part is
``tests/test_ops_scan_torch.py::test_mamba_grid_all_options``; this file adds fp16 and bf16 with mamba-ssm's
tolerances: out/state (rtol, atol) = (3e-3, 5e-3) for fp16, (3e-2, 5e-2) for bf16; gradients as its (older,
then asserted) checks: du x2, ddelta rtol x5 / atol x10, dA, dD, dz, ddelta_bias (max(1e-3, rtol), max(1e-3,
atol)) with dA's atol x5, dB/dC (rtol, atol). The reference, like mamba-ssm's ``selective_scan_ref``, computes in
fp32 from the same half inputs, so the two differ by the fp32 error (bounded on any CPU as tests/helpers.py says)
and by the final rounding of outputs and gradients to the half dtype: one ulp at most, 2^-10 relative for fp16
(rtol 3e-3) and 2^-7 for bf16 (rtol 3e-2). Not applicable here: complex weights and time-invariant B/C
(``is_variable_B/C=False``), which our ``selective_scan`` rejects with a ValueError (SS2D never uses them).
"""
import pytest
import torch

from nnunetv2_mamba.ops import selective_scan, selective_scan_reference
from nnunetv2_mamba.ops.backends import availability
from nnunetv2_mamba.ops.tolerances import scan_tolerances
from helpers import make_scan_inputs as make_inputs

def forward_backward(scan, inputs: dict, grad_out: torch.Tensor, **kwargs):
    out, state = scan(**inputs, delta_softplus=True, return_last_state=True, **kwargs)
    grads = torch.autograd.grad(out, list(inputs.values()), grad_out.to(out.dtype))
    return out, state, dict(zip(inputs, grads))


@pytest.mark.parametrize("backend", ["torch", "cpu"])
@pytest.mark.parametrize("itype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("seqlen", [128, 256, 512, 1024, 2048, 4096])
def test_mamba_half_precision_grid(seqlen, groups, itype, backend):
    if not availability(backend).available:
        pytest.skip(f"backend {backend} unavailable: {availability(backend).reason}")
    tolerances = scan_tolerances(itype)
    rtol, atol = tolerances.pop("out")
    inputs = make_inputs(seqlen, groups, bc_3d=groups == 1, dtype=itype)
    reference_inputs = {k: v.detach().float().requires_grad_() for k, v in inputs.items()}
    grad_out = torch.randn(inputs["u"].shape, generator=torch.Generator().manual_seed(1)).to(itype)
    out, state, grads = forward_backward(selective_scan, inputs, grad_out, backend=backend)
    out_ref, state_ref, grads_ref = forward_backward(selective_scan_reference, reference_inputs, grad_out.float())
    assert out.dtype == itype
    torch.testing.assert_close(out.float(), out_ref.to(itype).float(), rtol=rtol, atol=atol)
    torch.testing.assert_close(state, state_ref, rtol=rtol, atol=atol)
    del tolerances["state"]  # the state is fp32: the output's tolerances, as mamba-ssm's test holds it
    for name, (grtol, gatol) in tolerances.items():
        torch.testing.assert_close(grads[name].float(), grads_ref[name], rtol=grtol, atol=gatol,
                                   msg=lambda m: f"d{name}: {m}")

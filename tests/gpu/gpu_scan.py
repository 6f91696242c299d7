"""The scan checks' inputs and comparisons (``scan``, ``triton_backward``): mamba-ssm's test_selective_scan recipe
with SS2D's options, and the errors against mamba-ssm's tolerances (nnunetv2_mamba/ops/tolerances.py)."""
from __future__ import annotations

import torch

from nnunetv2_mamba.ops.tolerances import scan_tolerances

from gpu_outcome import errors, worst
from gpu_settings import DIRECTIONS, DTYPES

DIFFERENTIABLE = ("u", "delta", "A", "B", "C", "D", "delta_bias")
IN_DTYPE = ("u", "delta", "B", "C")  # inputs given in the dtype under test; A, D, delta_bias stay fp32


def tolerances(dtype: str) -> dict[str, tuple[float, float]]:
    """mamba-ssm's test_selective_scan (rtol, atol) without z, per output and gradient ("out", "du", ...)."""
    per_input = scan_tolerances(DTYPES[dtype], has_z=False)
    return {"out": per_input["out"], **{"d" + name: per_input[name] for name in DIFFERENTIABLE}}


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

"""What the SS2D and SS3D tests share: random parameters, the fp32 rounding counts of a selective-scan mixer
(SS2D's four directions, SS3D's K) from which their tolerances follow (tests/helpers.py), and the check that its
two sequence layouts compute the same numbers."""
import dataclasses
import math

import torch
from torch import nn

from nnunetv2_mamba.ops import scan_backend
from helpers import assert_fp32_close


def randomise(module: nn.Module, seed: int = 0) -> None:
    """Every parameter N(0, 0.5²), from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


def scan_roundings(m: nn.Module, L: int) -> int:
    """Roundings on the longest chain of a mixer's scan core over L positions: x_proj's dot product over D, dt_proj's
    over R, the recurrence's 3 per position (decay times state, Δu times B, the sum), the C·h sum over N, the merge
    of K directions (K - 1 sums), and 10 for the pointwise ops (softplus, exp, the products with Δ and D)."""
    return m.d_inner + m.dt_rank + 3 * L + m.d_state + m.directions.num_directions - 1 + 10


def mixer_roundings(m: nn.Module, L: int) -> int:
    """The scan core's chain plus in_proj's dot product over C, the depthwise conv's 3^n taps and bias, LayerNorm's
    mean and variance over D, out_proj's dot product over D and 10 for SiLU, rsqrt and the products. LayerNorm
    divides y by its spread over the channels, of the order of y's largest value for these random weights, so the
    bound stays relative to the output's largest value."""
    taps = math.prod(m.depthwise_conv.kernel_size) + 1
    return scan_roundings(m, L) + m.d_model + taps + 3 * m.d_inner + 10


def backward_roundings(m: nn.Module, L: int, batch: int) -> int:
    """The backward of the scan core runs the chain again in reverse (the adjoint recurrence and its sums over N, the
    transposed projections over R + 2N and D, the cross scan's adjoint), then sums each weight gradient over the
    B·L positions."""
    return 2 * scan_roundings(m, L) + 2 * m.d_state + batch * L


def assert_both_layouts_compute_the_same(m: nn.Module, x: torch.Tensor) -> None:
    """The mixer's channels-first and channels-last scan paths, on the conv output ``x`` (B, *S, D) and with the
    same scan, give the same output and gradients (input and every parameter) within the fp32 bounds of their
    different summation orders."""
    last_backend = scan_backend(x.device)
    assert last_backend.layout == "channels_last"
    first_backend = dataclasses.replace(last_backend, layout="channels_first")  # the same scan on the other layout
    results = []
    for path, backend in ((m._scan_channels_first, first_backend), (m._scan_channels_last, last_backend)):
        out = path(x, backend)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(),
                                    [x] + list(m.parameters()), allow_unused=True)
        results.append((out, grads))
    (first, first_grads), (last, last_grads) = results
    assert first.shape == last.shape == x.shape
    batch, L = x.shape[0], x[0, ..., 0].numel()
    assert_fp32_close(last, first, scan_roundings(m, L))
    backward = backward_roundings(m, L, batch)
    for a, b in zip(last_grads, first_grads):
        assert (a is None) == (b is None)
        if a is not None:
            assert_fp32_close(a, b, backward)

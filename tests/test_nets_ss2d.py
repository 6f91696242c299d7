"""SS2D against a loop-by-loop implementation of its spec (docs/architecture.md, "SS2D"), scan direction order,
initialisation; every test runs with each CPU scan backend (torch, and cpu where a C compiler builds it)."""
import math

import pytest
import torch
import torch.nn.functional as F

from nnunetv2_mamba.nets import SS2D, VSSBlock
from nnunetv2_mamba.ops import cross_merge, cross_scan, selective_scan
from helpers import assert_fp32_close
from mixer_checks import assert_both_layouts_compute_the_same, mixer_roundings, randomise

pytestmark = pytest.mark.usefixtures("cpu_scan_backend")


def depthwise_conv3x3_by_loops(u, weight, bias):
    """(B, D, H, W) zero-padded 3x3 depthwise convolution, one kernel tap at a time."""
    H, W = u.shape[-2:]
    padded = F.pad(u, (1, 1, 1, 1))
    out = bias[None, :, None, None].expand_as(u).clone()
    for di in range(3):
        for dj in range(3):
            out = out + weight[None, :, 0, di, dj, None, None] * padded[:, :, di:di + H, dj:dj + W]
    return out


def ss2d_by_loops(m: SS2D, x):
    """The spec's formulas with explicit loops over directions and positions: (B, H, W, C) -> (B, H, W, C)."""
    batch, H, W, _ = x.shape
    D, N, R = m.d_inner, m.d_state, m.dt_rank
    xz = x @ m.in_proj.weight.T
    u, z = xz[..., :D], xz[..., D:]
    u = F.silu(depthwise_conv3x3_by_loops(u.permute(0, 3, 1, 2), m.conv2d.weight, m.conv2d.bias))
    row_major = [(i, j) for i in range(H) for j in range(W)]
    col_major = [(i, j) for j in range(W) for i in range(H)]
    orders = [row_major, col_major, row_major[::-1], col_major[::-1]]
    A = -torch.exp(m.A_logs)
    y = torch.zeros(batch, H, W, D)
    for k, order in enumerate(orders):
        channels = slice(k * D, (k + 1) * D)
        state = torch.zeros(batch, D, N)
        for i, j in order:
            u_t = u[:, :, i, j]
            proj = u_t @ m.x_proj_weight[k].T
            dt_low, B_t, C_t = proj[:, :R], proj[:, R:R + N], proj[:, R + N:]
            delta = F.softplus(dt_low @ m.dt_projs_weight[k].T + m.dt_projs_bias[k])
            state = torch.exp(delta[..., None] * A[channels]) * state + (delta * u_t)[..., None] * B_t[:, None, :]
            y[:, i, j] += (state * C_t[:, None, :]).sum(-1) + m.Ds[channels] * u_t
    y = F.layer_norm(y, (D,), m.out_norm.weight, m.out_norm.bias, eps=m.out_norm.eps)
    return (y * F.silu(z)) @ m.out_proj.weight.T


def test_ss2d_matches_loop_implementation_of_spec():
    torch.manual_seed(0)
    m = SS2D(d_model=4, d_state=4)
    randomise(m)
    x = torch.randn(2, 3, 5, 4)  # non-square: catches H/W transposition mistakes
    with torch.no_grad():
        assert_fp32_close(m(x), ss2d_by_loops(m, x), mixer_roundings(m, L=3 * 5))


def test_both_sequence_layouts_compute_the_same_numbers():
    """The channels-last path (CPU scans) and the channels-first one (compiled GPU kernels) agree, gradients
    included; on the CPU the default is channels-last, which the loop test above checks against the spec."""
    torch.manual_seed(0)
    m = SS2D(d_model=8, d_state=4)
    randomise(m)
    x = torch.randn(2, 5, 3, 16, requires_grad=True)  # the conv output's (B, H, W, D)
    assert_both_layouts_compute_the_same(m, x)


def test_vss_block_is_residual_ss2d_of_layernorm():
    block = VSSBlock(4, drop_path=0.5, d_state=4).eval()
    randomise(block, seed=1)
    x = torch.randn(1, 4, 3, 4)
    with torch.no_grad():
        expected = x + ss2d_by_loops(block.self_attention, block.ln_1(x))
        # SS2D's chain plus ln_1's mean and variance over C and the residual sum
        assert_fp32_close(block(x), expected, mixer_roundings(block.self_attention, L=3 * 4) + 2 * 4 + 1)


H, W = 3, 5


def position_orders():
    row = lambda i, j: i * W + j  # noqa: E731
    col = lambda i, j: j * H + i  # noqa: E731
    last = H * W - 1
    return [row, col, lambda i, j: last - row(i, j), lambda i, j: last - col(i, j)]


@pytest.mark.parametrize("i, j", [(0, 0), (1, 3), (2, 4), (2, 1)])
def test_cross_scan_direction_order(i, j):
    """k=0 row-major, k=1 column-major, k=2 reversed row-major, k=3 reversed column-major."""
    image = torch.zeros(1, 1, H, W)
    image[0, 0, i, j] = 1
    xs = cross_scan(image)
    assert xs.shape == (1, 4, 1, H * W)
    for k, index in enumerate(position_orders()):
        assert xs[0, k, 0].nonzero().flatten().tolist() == [index(i, j)]
    torch.testing.assert_close(cross_merge(xs, H, W), 4 * image.flatten(2))  # sums of 0s and 1s: exact


@pytest.mark.parametrize("i, j", [(1, 2), (0, 4)])
def test_each_direction_reaches_the_positions_after_the_impulse_in_its_order(i, j):
    """A causal scan along direction k carries an impulse to exactly the positions that come later in k's order."""
    image = torch.zeros(1, 1, H, W)
    image[0, 0, i, j] = 1
    ones = torch.ones(1, 4, 1, H * W)
    for k, index in enumerate(position_orders()):
        only_k = torch.zeros(1, 4, 1, 1)
        only_k[0, k] = 1
        u = (cross_scan(image) * only_k).reshape(1, 4, H * W)
        y = selective_scan(u, torch.ones_like(u), -torch.ones(4, 1), ones, ones)
        reached = cross_merge(y.reshape(1, 4, 1, H * W), H, W).reshape(H, W) != 0
        expected = torch.tensor([[index(a, b) >= index(i, j) for b in range(W)] for a in range(H)])
        assert torch.equal(reached, expected), f"direction {k}"


def test_initialisation_follows_vmamba_v0():
    torch.manual_seed(0)
    m = SS2D(d_model=96)
    assert (m.d_inner, m.dt_rank) == (192, 6)
    assert m.x_proj_weight.shape == (4, 6 + 32, 192) and m.dt_projs_weight.shape == (4, 192, 6)
    torch.testing.assert_close(m.A_logs, torch.arange(1, 17).float().log().expand(4 * 192, 16))  # the same fp32 log
    assert torch.equal(m.Ds, torch.ones(4 * 192))
    dt = F.softplus(m.dt_projs_bias)
    # softplus(softplus^-1(dt)) in fp32 returns dt within a few u·|log dt| < 1e-6 relative; 1e-4 leaves room
    assert dt.min() >= 1e-3 * (1 - 1e-4) and dt.max() <= 1e-1 * (1 + 1e-4)
    assert m.dt_projs_weight.abs().max() <= 6 ** -0.5
    assert m.x_proj_weight.abs().max() <= 192 ** -0.5
    assert m.dt_projs_weight.abs().max() > 0.9 * 6 ** -0.5  # uniform over the whole range, not a tiny init
    assert m.conv2d.groups == 192 and m.conv2d.bias is not None and m.in_proj.bias is None
    assert math.isclose(m.out_norm.eps, 1e-5)

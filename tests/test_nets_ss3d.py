"""SS3D against a loop-by-loop implementation of SS2D's formulas on a volume (docs/three_d.md, "SS3D"), both
sequence layouts, a float64 gradient check, and the VSS block around it; every test runs with each CPU scan
backend (torch, and cpu where a C compiler builds it)."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from nnunetv2_mamba.nets import SS3D, VSSBlock
from helpers import assert_fp32_close
from mixer_checks import assert_both_layouts_compute_the_same, mixer_roundings, randomise

pytestmark = pytest.mark.usefixtures("cpu_scan_backend")


def depthwise_conv3x3x3_by_loops(u, weight, bias):
    """(B, D, Z, Y, X) zero-padded 3x3x3 depthwise convolution, one kernel tap at a time."""
    Z, Y, X = u.shape[-3:]
    padded = F.pad(u, (1, 1, 1, 1, 1, 1))
    out = bias[None, :, None, None, None].expand_as(u).clone()
    for a, b, c in itertools.product(range(3), repeat=3):
        out = out + weight[None, :, 0, a, b, c, None, None, None] * padded[:, :, a:a + Z, b:b + Y, c:c + X]
    return out


def volume_orders(Z, Y, X, K):
    """Voxel visiting orders: x fastest, y fastest, z fastest (the first K/2), then the same reversed."""
    voxels = list(itertools.product(range(Z), range(Y), range(X)))
    x_fastest = sorted(voxels, key=lambda v: (v[0], v[1], v[2]))
    y_fastest = sorted(voxels, key=lambda v: (v[0], v[2], v[1]))
    z_fastest = sorted(voxels, key=lambda v: (v[1], v[2], v[0]))
    forward = [x_fastest, y_fastest, z_fastest][:K // 2]
    return forward + [order[::-1] for order in forward]


def ss3d_by_loops(m: SS3D, x):
    """SS2D's formulas with explicit loops over directions and voxels: (B, Z, Y, X, C) -> (B, Z, Y, X, C)."""
    batch, Z, Y, X, _ = x.shape
    D, N, R = m.d_inner, m.d_state, m.dt_rank
    xz = x @ m.in_proj.weight.T
    u, z = xz[..., :D], xz[..., D:]
    u = F.silu(depthwise_conv3x3x3_by_loops(u.permute(0, 4, 1, 2, 3), m.conv3d.weight, m.conv3d.bias))
    A = -torch.exp(m.A_logs)
    y = torch.zeros(batch, Z, Y, X, D, dtype=x.dtype)
    for k, order in enumerate(volume_orders(Z, Y, X, m.directions.num_directions)):
        channels = slice(k * D, (k + 1) * D)
        state = torch.zeros(batch, D, N, dtype=x.dtype)
        for i, j, l in order:
            u_t = u[:, :, i, j, l]
            proj = u_t @ m.x_proj_weight[k].T
            dt_low, B_t, C_t = proj[:, :R], proj[:, R:R + N], proj[:, R + N:]
            delta = F.softplus(dt_low @ m.dt_projs_weight[k].T + m.dt_projs_bias[k])
            state = torch.exp(delta[..., None] * A[channels]) * state + (delta * u_t)[..., None] * B_t[:, None, :]
            y[:, i, j, l] += (state * C_t[:, None, :]).sum(-1) + m.Ds[channels] * u_t
    y = F.layer_norm(y, (D,), m.out_norm.weight, m.out_norm.bias, eps=m.out_norm.eps)
    return (y * F.silu(z)) @ m.out_proj.weight.T


@pytest.mark.parametrize("K", [6, 4, 2])
def test_ss3d_matches_loop_implementation(K):
    torch.manual_seed(0)
    m = SS3D(d_model=4, d_state=3, num_directions=K)
    randomise(m)
    x = torch.randn(2, 2, 3, 4, 4)  # Z, Y, X all different: catches axis mix-ups
    with torch.no_grad():
        assert_fp32_close(m(x), ss3d_by_loops(m, x), mixer_roundings(m, L=2 * 3 * 4))


def test_parameters_are_per_direction_as_in_ss2d():
    m = SS3D(d_model=96)
    assert (m.d_inner, m.dt_rank, m.directions.num_directions) == (192, 6, 6)
    assert m.x_proj_weight.shape == (6, 6 + 32, 192) and m.dt_projs_weight.shape == (6, 192, 6)
    assert m.dt_projs_bias.shape == (6, 192) and m.A_logs.shape == (6 * 192, 16) and m.Ds.shape == (6 * 192,)
    assert m.conv3d.weight.shape == (192, 1, 3, 3, 3) and m.conv3d.groups == 192
    assert [name for name, _ in m.named_children()] == ["in_proj", "conv3d", "out_norm", "out_proj"]
    with pytest.raises(ValueError, match="2, 4 or 6 directions"):
        SS3D(d_model=8, num_directions=3)


def test_both_sequence_layouts_compute_the_same_numbers():
    """The channels-last path (CPU scans) and the channels-first one (compiled GPU kernels), each with the cross
    scan / merge the backend object picks for the volume's directions, agree, gradients included."""
    torch.manual_seed(0)
    m = SS3D(d_model=8, d_state=4)
    randomise(m)
    x = torch.randn(2, 3, 2, 5, 16, requires_grad=True)  # the conv output's (B, Z, Y, X, D)
    assert_both_layouts_compute_the_same(m, x)


@pytest.mark.parametrize("K", [6, 2])
def test_gradcheck_float64(K):
    """Gradients of the input and of every parameter (a random projection of the Jacobian, float64)."""
    torch.manual_seed(0)
    m = SS3D(d_model=4, d_state=2, num_directions=K).double()
    names = [name for name, _ in m.named_parameters()]
    x = torch.randn(1, 2, 2, 3, 4, dtype=torch.float64, requires_grad=True)

    def run(x, *parameters):
        return torch.func.functional_call(m, dict(zip(names, parameters)), (x,))

    params = [p.detach().clone().requires_grad_() for p in m.parameters()]
    assert torch.autograd.gradcheck(run, (x, *params), fast_mode=True)


def test_vss_block_with_ss3d_is_residual_ss3d_of_layernorm():
    block = VSSBlock(4, drop_path=0.5, d_state=3, mixer=SS3D).eval()
    randomise(block, seed=1)
    x = torch.randn(1, 2, 2, 3, 4)
    with torch.no_grad():
        # SS3D's chain plus ln_1's mean and variance over C and the residual sum
        assert_fp32_close(block(x), x + ss3d_by_loops(block.self_attention, block.ln_1(x)),
                          mixer_roundings(block.self_attention, L=2 * 2 * 3) + 2 * 4 + 1)

"""The pure-PyTorch selective scan equals the reference loop, to mamba-ssm's own test tolerances."""
import pytest
import torch

from nnunetv2_mamba.ops.scan_torch import selective_scan_torch
from helpers import make_scan_inputs as make_inputs
from scan_checks import (OPTION_COMBINATIONS, assert_autocast_runs_the_scan_in_fp32,
                         assert_half_inputs_compute_in_fp32, assert_matches_reference,
                         saved_tensor_sizes)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("seqlen", [128, 256, 512, 1024, 2048, 4096])
def test_mamba_grid_all_options(seqlen, groups):
    """mamba-ssm's test grid: variable B/C ((b, N, L) for one group), D, z, delta_bias, softplus, last state."""
    assert_matches_reference(make_inputs(seqlen, groups, bc_3d=groups == 1))


@pytest.mark.parametrize("has_D,has_z,has_delta_bias,delta_softplus,return_last_state", OPTION_COMBINATIONS)
def test_option_combinations(has_D, has_z, has_delta_bias, delta_softplus, return_last_state):
    inputs = make_inputs(256, groups=2, has_D=has_D, has_z=has_z, has_delta_bias=has_delta_bias)
    assert_matches_reference(inputs, delta_softplus, return_last_state)


@pytest.mark.parametrize("seqlen", [1, 2, 129, 1000])
@pytest.mark.parametrize("bc_3d", [True, False])
def test_lengths_not_a_multiple_of_the_chunk(seqlen, bc_3d):
    assert_matches_reference(make_inputs(seqlen, groups=1, bc_3d=bc_3d))


def test_channel_blocks_split_inside_groups(monkeypatch):
    """Wide inputs run in channel blocks (cache-sized slices); force tiny blocks and check nothing changes."""
    import nnunetv2_mamba.ops.scan_torch as scan_torch
    chunks = -(-300 // scan_torch.chunk_length(300))
    monkeypatch.setattr(scan_torch, "SLICE_ELEMENTS", chunks * 2 * 8)  # one channel per block at L=300
    assert_matches_reference(make_inputs(300, groups=2, dim=6))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_fp32(dtype):
    assert_half_inputs_compute_in_fp32(dtype, backend="torch")


def test_autocast_runs_the_scan_in_fp32():
    assert_autocast_runs_the_scan_in_fp32(backend="torch")


def test_gradcheck_float64():
    torch.manual_seed(0)
    b, d, N, L, G = 1, 4, 3, 11, 2
    args = (torch.randn(b, d, L, dtype=torch.float64), 0.5 * torch.rand(b, d, L, dtype=torch.float64),
            -0.5 * torch.rand(d, N, dtype=torch.float64), torch.randn(b, G, N, L, dtype=torch.float64),
            torch.randn(b, G, N, L, dtype=torch.float64), torch.randn(d, dtype=torch.float64),
            torch.randn(b, d, L, dtype=torch.float64), 0.5 * torch.rand(d, dtype=torch.float64))
    args = tuple(a.requires_grad_() for a in args)
    assert torch.autograd.gradcheck(lambda *a: selective_scan_torch(*a, delta_softplus=True), args)


def test_saves_only_inputs_for_backward():
    """Memory stays linear: no saved tensor is bigger than the largest input."""
    inputs = make_inputs(512, groups=2, dim=8, dstate=16)
    out = selective_scan_torch(**inputs, delta_softplus=True)
    largest_input = max(v.numel() for v in inputs.values() if v is not None)
    sizes = saved_tensor_sizes(out)
    assert sizes and max(sizes) <= largest_input


def test_non_contiguous_inputs():
    inputs = make_inputs(130, groups=2)
    strided = {k: (v.detach().transpose(-1, -2).contiguous().transpose(-1, -2).requires_grad_()
                   if v is not None and v.dim() > 1 else v) for k, v in inputs.items()}
    assert not strided["u"].is_contiguous()
    assert_matches_reference(strided)

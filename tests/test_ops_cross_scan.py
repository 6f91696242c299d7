"""cross_scan / cross_merge equal the per-pixel reference, merge(scan(x)) == 4x exactly, and gradients are right."""
import pytest
import torch

from nnunetv2_mamba.ops import cross_merge, cross_merge_channels_last, cross_scan, cross_scan_channels_last
from nnunetv2_mamba.ops.cross_scan_reference import cross_merge_reference, cross_scan_reference
from helpers import assert_fp32_close

# A merged pixel is the sum of its 4 directions' values, added in another order by each implementation: 3 roundings
# (tests/helpers.py) relative to the sum of the 4 magnitudes (cross_merge_reference of |ys|). The scan only moves
# values, so it is compared exactly.
MERGE_ROUNDINGS = 3

SHAPES = [(2, 3, 4, 4), (1, 5, 3, 7), (2, 2, 6, 1), (1, 1, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
def test_cross_scan_equals_reference(shape):
    x = torch.randn(shape)
    assert torch.equal(cross_scan(x), cross_scan_reference(x))


@pytest.mark.parametrize("shape", SHAPES)
def test_cross_merge_equals_reference(shape):
    B, C, H, W = shape
    ys = torch.randn(B, 4, C, H * W)
    assert_fp32_close(cross_merge(ys, H, W), cross_merge_reference(ys, H, W), MERGE_ROUNDINGS,
                      scale=cross_merge_reference(ys.abs(), H, W).max().item())


@pytest.mark.parametrize("shape", SHAPES)
def test_merge_of_scan_is_four_times_identity(shape):
    x = torch.randn(shape)
    B, C, H, W = shape
    assert torch.equal(cross_merge(cross_scan(x), H, W), 4 * x.flatten(2))


def test_directions_follow_the_index_formula():
    x = torch.arange(6.0).view(1, 1, 2, 3)  # rows [0 1 2], [3 4 5]
    assert cross_scan(x)[0, :, 0].tolist() == [[0, 1, 2, 3, 4, 5], [0, 3, 1, 4, 2, 5],
                                                [5, 4, 3, 2, 1, 0], [5, 2, 4, 1, 3, 0]]


def test_gradcheck_float64():
    x = torch.randn(1, 2, 3, 5, dtype=torch.float64, requires_grad=True)
    ys = torch.randn(1, 4, 2, 15, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cross_scan, (x,))
    assert torch.autograd.gradcheck(lambda t: cross_merge(t, 3, 5), (ys,))


@pytest.mark.parametrize("shape", SHAPES)
def test_channels_last_pair_is_the_same_map(shape):
    """(B, H, W, C) -> (B, L, 4, C) is cross_scan with the channels moved last; likewise the merge."""
    B, C, H, W = shape
    x = torch.randn(shape)
    assert torch.equal(cross_scan_channels_last(x.permute(0, 2, 3, 1)), cross_scan(x).permute(0, 3, 1, 2))
    ys = torch.randn(B, 4, C, H * W)
    assert_fp32_close(cross_merge_channels_last(ys.permute(0, 3, 1, 2), H, W),
                      cross_merge(ys, H, W).view(B, C, H, W).permute(0, 2, 3, 1), MERGE_ROUNDINGS,
                      scale=cross_merge_reference(ys.abs(), H, W).max().item())


def test_channels_last_gradcheck_float64():
    x = torch.randn(1, 3, 5, 2, dtype=torch.float64, requires_grad=True)
    ys = torch.randn(1, 15, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cross_scan_channels_last, (x,))
    assert torch.autograd.gradcheck(lambda t: cross_merge_channels_last(t, 3, 5), (ys,))


def test_bad_shapes_raise_one_clear_error():
    with pytest.raises(ValueError, match="B, C, H, W"):
        cross_scan(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="cross_merge expects"):
        cross_merge(torch.randn(1, 4, 2, 12), 3, 5)
    with pytest.raises(ValueError, match="B, H, W, C"):
        cross_scan_channels_last(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="cross_merge_channels_last expects"):
        cross_merge_channels_last(torch.randn(1, 12, 4, 2), 3, 5)

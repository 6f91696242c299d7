"""3D cross scan / merge: equal to the per-voxel reference, adjoint to each other, right gradients, both layouts."""
import pytest
import torch

from nnunetv2_mamba.ops import (IMAGE_DIRECTIONS, cross_merge_3d, cross_merge_3d_channels_last, cross_scan,
                                cross_scan_3d, cross_scan_3d_channels_last, volume_directions)
from nnunetv2_mamba.ops.cross_scan_3d import scan_orders
from nnunetv2_mamba.ops.cross_scan_3d_reference import cross_merge_3d_reference, cross_scan_3d_reference

SHAPES = [(2, 3, 2, 3, 4), (1, 2, 5, 1, 3), (1, 1, 1, 1, 1), (2, 2, 3, 4, 2)]
COUNTS = (2, 4, 6)


@pytest.mark.parametrize("K", COUNTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_cross_scan_3d_equals_reference(shape, K):
    x = torch.randn(shape)
    assert torch.equal(cross_scan_3d(x, K), cross_scan_3d_reference(x, K))


@pytest.mark.parametrize("K", COUNTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_cross_merge_3d_equals_reference(shape, K):
    B, C, *spatial = shape
    ys = torch.randn(B, K, C, torch.Size(spatial).numel())
    torch.testing.assert_close(cross_merge_3d(ys, spatial), cross_merge_3d_reference(ys, spatial), rtol=0,
                               atol=1e-6)


@pytest.mark.parametrize("K", COUNTS)
def test_merge_is_the_adjoint_of_scan_in_both_layouts(K):
    """<scan(x), y> == <x, merge(y)> for random x and y (float64), and merge(scan(x)) == K x."""
    gen = torch.Generator().manual_seed(K)
    B, C, D, H, W = 2, 3, 3, 4, 5
    x = torch.randn(B, C, D, H, W, generator=gen, dtype=torch.float64)
    ys = torch.randn(B, K, C, D * H * W, generator=gen, dtype=torch.float64)
    torch.testing.assert_close((cross_scan_3d(x, K) * ys).sum(), (x.flatten(2) * cross_merge_3d(ys, (D, H, W))).sum(),
                               rtol=1e-12, atol=0)
    x_last, ys_last = x.permute(0, 2, 3, 4, 1), ys.permute(0, 3, 1, 2)
    torch.testing.assert_close((cross_scan_3d_channels_last(x_last, K) * ys_last).sum(),
                               (x_last * cross_merge_3d_channels_last(ys_last, (D, H, W))).sum(), rtol=1e-12, atol=0)
    x32 = x.float()
    assert torch.equal(cross_merge_3d(cross_scan_3d(x32, K), (D, H, W)), K * x32.flatten(2))


def test_directions_follow_the_index_formula():
    x = torch.arange(12.0).view(1, 1, 2, 2, 3)  # slices [[0 1 2], [3 4 5]] and [[6 7 8], [9 10 11]]
    w_fastest = list(range(12))
    h_fastest = [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]
    d_fastest = [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11]
    expected = [w_fastest, h_fastest, d_fastest, w_fastest[::-1], h_fastest[::-1], d_fastest[::-1]]
    assert cross_scan_3d(x, 6)[0, :, 0].tolist() == expected
    assert scan_orders(6) == ((2, False), (1, False), (0, False), (2, True), (1, True), (0, True))
    assert cross_scan_3d(x, 2)[0, :, 0].tolist() == [w_fastest, w_fastest[::-1]]


def test_four_directions_on_one_slice_are_ss2ds_four():
    """2D direction k is 3D direction k of K = 4: the 3D scan generalises SS2D's, slice by slice."""
    image = torch.randn(2, 3, 4, 5)
    assert torch.equal(cross_scan_3d(image[:, :, None], 4), cross_scan(image))


@pytest.mark.parametrize("K", COUNTS)
def test_gradcheck_float64(K):
    x = torch.randn(1, 2, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    ys = torch.randn(1, K, 2, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: cross_scan_3d(t, K), (x,))
    assert torch.autograd.gradcheck(lambda t: cross_merge_3d(t, (2, 3, 2)), (ys,))
    x_last = x.detach().permute(0, 2, 3, 4, 1).contiguous().requires_grad_()
    ys_last = ys.detach().permute(0, 3, 1, 2).contiguous().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: cross_scan_3d_channels_last(t, K), (x_last,))
    assert torch.autograd.gradcheck(lambda t: cross_merge_3d_channels_last(t, (2, 3, 2)), (ys_last,))


@pytest.mark.parametrize("K", COUNTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_channels_last_pair_is_the_same_map(shape, K):
    B, C, *spatial = shape
    x = torch.randn(shape)
    assert torch.equal(cross_scan_3d_channels_last(x.permute(0, 2, 3, 4, 1), K),
                       cross_scan_3d(x, K).permute(0, 3, 1, 2))
    ys = torch.randn(B, K, C, torch.Size(spatial).numel())
    torch.testing.assert_close(cross_merge_3d_channels_last(ys.permute(0, 3, 1, 2), spatial),
                               cross_merge_3d(ys, spatial).view(B, C, *spatial).permute(0, 2, 3, 4, 1), rtol=0, atol=0)


def test_scan_directions_objects_plug_the_right_maps():
    x = torch.randn(1, 2, 3, 4, 5)
    volume = volume_directions(4)
    assert (volume.spatial_dims, volume.num_directions) == (3, 4) and volume is volume_directions(4)
    assert torch.equal(volume.scan_channels_first(x), cross_scan_3d(x, 4))
    assert torch.equal(volume.merge_channels_last(volume.scan_channels_last(x.permute(0, 2, 3, 4, 1)), (3, 4, 5)),
                       4 * x.permute(0, 2, 3, 4, 1))
    image = x[:, :, 0]
    assert (IMAGE_DIRECTIONS.spatial_dims, IMAGE_DIRECTIONS.num_directions) == (2, 4)
    assert torch.equal(IMAGE_DIRECTIONS.merge_channels_first(IMAGE_DIRECTIONS.scan_channels_first(image), (4, 5)),
                       4 * image.flatten(2))


def test_bad_input_raises_one_clear_error():
    with pytest.raises(ValueError, match="2, 4 or 6 directions"):
        cross_scan_3d(torch.randn(1, 1, 2, 2, 2), 8)
    with pytest.raises(ValueError, match="B, C, D, H, W"):
        cross_scan_3d(torch.randn(1, 2, 3, 4))
    with pytest.raises(ValueError, match="B, D, H, W, C"):
        cross_scan_3d_channels_last(torch.randn(1, 2, 3, 4))
    with pytest.raises(ValueError, match="cross_merge_3d expects"):
        cross_merge_3d(torch.randn(1, 6, 2, 12), (2, 2, 2))
    with pytest.raises(ValueError, match="cross_merge_3d_channels_last expects"):
        cross_merge_3d_channels_last(torch.randn(1, 8, 5, 2), (2, 2, 2))

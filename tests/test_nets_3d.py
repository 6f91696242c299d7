"""Mamba-UNet / VM-UNet on volumes: parameter counts, per-axis geometry, shapes, deep supervision, layers."""
import itertools
import math

import pytest
import torch
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform

from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.nets.geometry import factors_for_spacing, make_geometry
from nnunetv2_mamba.nets.patches import PatchExpand, PatchMerging

NARROW = dict(dims=(8, 16, 32, 64), spatial_dims=3)
ANISOTROPIC = dict(patch_size=(1, 4, 4), merge_factors=[(1, 2, 2), (2, 2, 2), (2, 2, 2)])


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def extra_3d_parameters(dims, decoder_depths, expands, in_chans, d_state=16):
    """What the 3D network adds to the 2D one, counted from the layer definitions: per VSS block a 3x3x3 instead
    of a 3x3 depthwise conv and 6 instead of 4 directions' x_proj, dt_proj, A, D; a 4x4x4 stem; mergings of
    8 instead of 4 voxels; expands to 8 instead of 4 positions (x64 instead of x16 for the final x4)."""
    def block(C):
        D, R = 2 * C, math.ceil(C / 16)
        return 18 * D + 2 * ((R + 2 * d_state) * D + D * R + D + D * d_state + D)
    encoder = sum(2 * block(C) for C in dims) + 48 * in_chans * dims[0] + sum(8 * C + 8 * C * C for C in dims[:-1])
    decoder = sum(depth * block(C) for C, depth in zip(decoder_depths[0], decoder_depths[1]))
    return encoder + decoder + sum(i * o * (64 - 16 if final else 4) for i, o, final in expands)


def test_paper_width_parameter_counts_in_3d():
    dims = (96, 192, 384, 768)
    mamba = MambaUNet(3, 4, spatial_dims=3)
    assert n_params(mamba) == 24_653_568
    assert n_params(mamba) == 19_121_664 + extra_3d_parameters(
        dims, ((384, 192, 96), (2, 2, 2)), [(768, 384, False), (384, 192, False), (192, 96, False), (96, 96, True)], 3)
    vm = VMUNet(3, 1, spatial_dims=3)
    assert n_params(vm) == 33_552_745
    assert n_params(vm) == 27_427_561 + extra_3d_parameters(
        dims, ((768, 384, 192, 96), (2, 2, 2, 1)),
        [(768, 384, False), (384, 192, False), (192, 96, False), (96, 24, True)], 3)


@pytest.mark.parametrize("cls", [MambaUNet, VMUNet])
@pytest.mark.parametrize("geometry, size", [({}, (32, 32, 32)), ({}, (20, 35, 17)), (ANISOTROPIC, (6, 40, 33))])
def test_output_is_input_shaped_and_deep_supervision_matches_nnunet_targets(cls, geometry, size):
    torch.manual_seed(0)
    net = cls(1, 3, deep_supervision=True, **NARROW, **geometry).eval()
    with torch.no_grad():
        outs = net(torch.randn(1, 1, *size))
    targets = DownsampleSegForDSTransform(net.deep_supervision_scales)(
        segmentation=torch.zeros(1, *size, dtype=torch.uint8))["segmentation"]
    assert [tuple(o.shape) for o in outs] == [(1, 3, *t.shape[1:]) for t in targets]
    assert all(torch.isfinite(o).all() for o in outs)
    net.decoder.deep_supervision = False
    with torch.no_grad():
        assert net(torch.randn(1, 1, *size)).shape == (1, 3, *size)


def test_anisotropic_geometry_keeps_the_slice_axis_where_asked():
    net = MambaUNet(1, 2, deep_supervision=True, **NARROW, **ANISOTROPIC)
    assert net.geometry.stage_strides == [(1, 4, 4), (1, 8, 8), (2, 16, 16), (4, 32, 32)]
    assert net.size_divisor == (4, 32, 32)
    assert net.deep_supervision_scales == [1.0, [1.0, 0.25, 0.25], [1.0, 0.125, 0.125], [0.5, 0.0625, 0.0625]]
    assert MambaUNet(1, 2, **NARROW).deep_supervision_scales == [1.0, 0.25, 0.125, 0.0625]
    assert net.encoder.patch_embed.proj.weight.shape == (8, 1, 1, 4, 4)
    assert net.encoder.layers[0].downsample.reduction.weight.shape == (16, 4 * 8)
    assert net.encoder.layers[1].downsample.reduction.weight.shape == (32, 8 * 16)


@pytest.mark.parametrize("cls", [MambaUNet, VMUNet])
def test_internal_pad_and_crop_equals_padding_by_hand(cls):
    torch.manual_seed(0)
    net = cls(2, 3, spatial_dims=3, dims=(8, 16, 32), depths=(1, 1, 1),
              decoder_depths=(1, 1) if cls is MambaUNet else (1, 1, 1)).eval()  # size divisor 16
    x = torch.randn(1, 2, 12, 17, 9)
    with torch.no_grad():
        out = net(x)
        manual = net(torch.nn.functional.pad(x, (0, 7, 0, 15, 0, 4)))[..., :12, :17, :9]
    torch.testing.assert_close(out, manual)


@pytest.mark.parametrize("cls", [MambaUNet, VMUNet])
def test_every_parameter_gets_a_gradient_and_deep_supervision_heads_are_optional(cls):
    torch.manual_seed(0)
    kwargs = dict(spatial_dims=3, dims=(8, 16, 32), depths=(1, 1, 1), num_directions=4,
                  decoder_depths=(1, 1) if cls is MambaUNet else (1, 1, 1))
    net = cls(2, 3, deep_supervision=True, **kwargs).train()
    outs = net(torch.randn(2, 2, 12, 20, 16))
    sum(o.square().mean() for o in outs).backward()
    assert [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []
    inference = cls(2, 3, deep_supervision=False, **kwargs)
    inference.load_state_dict(net.state_dict())
    assert not any(k.startswith("decoder.aux_heads") for k in inference.state_dict())


def test_input_of_the_wrong_dimension_gets_one_clear_error():
    net = MambaUNet(2, 3, **NARROW)
    with pytest.raises(ValueError, match=r"\(B, 2, D, H, W\)"):
        net(torch.randn(1, 2, 32, 32))
    with pytest.raises(ValueError, match="spatial_dims must be 2"):
        MambaUNet(1, 2, spatial_dims=4)
    with pytest.raises(ValueError, match="one entry per patch merging"):
        VMUNet(1, 2, spatial_dims=3, merge_factors=[2, 2])
    with pytest.raises(ValueError, match="patch_size must be a positive integer or 3"):
        VMUNet(1, 2, spatial_dims=3, patch_size=(4, 4))
    with pytest.raises(ValueError, match="4 directions"):
        MambaUNet(1, 2, num_directions=6)


def test_factors_follow_nnunets_pooling_rule():
    assert factors_for_spacing([1, 1, 1], [64, 128, 128], 4) == ([4, 4, 4], [[2, 2, 2]] * 3)
    # 5 mm slices: the slice axis waits until the in-plane spacing has caught up (within 2x)
    assert factors_for_spacing([5, 1, 1], [16, 160, 160], 4) == ([1, 4, 4], [[2, 2, 2]] * 3)
    assert factors_for_spacing([8, 1, 1], [16, 160, 160], 4) == ([1, 4, 4], [[1, 2, 2], [2, 2, 2], [2, 2, 2]])
    # an axis stops at one feature: 16 voxels are halved 4 times
    assert factors_for_spacing([1, 1, 1], [16, 32, 32], 4) == ([4, 4, 4], [[2, 2, 2], [2, 2, 2], [1, 2, 2]])
    assert factors_for_spacing([1, 1], [512, 512], 4) == ([4, 4], [[2, 2]] * 3)
    geometry = make_geometry(3, 4, *factors_for_spacing([3, 0.8, 0.8], [40, 192, 160], 4))
    assert geometry.size_divisor == (16, 32, 32)


def test_patch_merging_concatenates_each_neighbourhood_first_axis_fastest():
    merging = PatchMerging(2, 5, factors=(2, 2, 2))
    x = torch.randn(1, 4, 2, 6, 2)
    offsets = [(d, h, w) for w, h, d in itertools.product(range(2), repeat=3)]
    expected = torch.cat([x[:, d::2, h::2, w::2] for d, h, w in offsets], dim=-1)
    torch.testing.assert_close(merging(x), merging.reduction(merging.norm(expected)))
    image_merging = PatchMerging(3, 4, factors=(2, 2))
    image = torch.randn(1, 4, 6, 3)
    swin = torch.cat([image[:, 0::2, 0::2], image[:, 1::2, 0::2], image[:, 0::2, 1::2], image[:, 1::2, 1::2]], -1)
    torch.testing.assert_close(image_merging(image), image_merging.reduction(image_merging.norm(swin)))


def test_patch_expand_puts_each_channel_group_at_its_offset():
    expand = PatchExpand(3, 2, scale=(1, 2, 3))
    x = torch.randn(1, 2, 3, 4, 3)
    out = expand(x)
    assert out.shape == (1, 2, 6, 12, 2)
    grouped = expand.expand(x).view(1, 2, 3, 4, 1, 2, 3, 2)  # (..., p0, p1, p2, c)
    for d, h, w in itertools.product(range(2), range(3), range(4)):
        for i, j in itertools.product(range(2), range(3)):
            torch.testing.assert_close(out[0, d, 2 * h + i, 3 * w + j], expand.norm(grouped[0, d, h, w, 0, i, j]))

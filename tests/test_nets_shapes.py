"""Mamba-UNet / VM-UNet: exact paper parameter counts, size-agnostic output shapes, deep supervision."""
import json

import pytest
import torch

from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.nets.unet_base import pad_to_multiple

NARROW = dict(dims=(8, 16, 32, 64))


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def test_mamba_unet_paper_parameter_count():
    assert n_params(MambaUNet(3, 4)) == 19_121_664


def test_vm_unet_paper_parameter_count():
    assert n_params(VMUNet(3, 1)) == 27_427_561


@pytest.mark.parametrize("cls", [MambaUNet, VMUNet])
@pytest.mark.parametrize("in_ch, n_cls, size, batch", [
    (1, 2, (224, 224), 1),
    (3, 4, (256, 224), 1),
    (5, 9, (97, 131), 3),
])
def test_output_shape_is_input_shape_with_class_channels(cls, in_ch, n_cls, size, batch):
    torch.manual_seed(0)
    net = cls(in_ch, n_cls, **NARROW).eval()
    with torch.no_grad():
        out = net(torch.randn(batch, in_ch, *size))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (batch, n_cls, *size)
    assert torch.isfinite(out).all()
    # raw logits: neither probabilities (sigmoid) nor a softmax over classes
    assert out.min() < 0 or out.max() > 1
    # softmax probabilities sum to 1 within γ_classes ≈ 1e-6 in fp32 (tests/helpers.py): 1e-3 would catch them
    assert not torch.allclose(out.sum(1), torch.ones_like(out[:, 0]), atol=1e-3)


def test_divisible_input_is_not_padded_and_others_are_padded_bottom_right():
    x = torch.randn(1, 2, 64, 96)
    assert pad_to_multiple(x, 32) is x
    padded = pad_to_multiple(torch.randn(1, 2, 97, 131), 32)
    assert padded.shape == (1, 2, 128, 160)
    assert padded[..., 97:, :].abs().sum() == 0 and padded[..., :, 131:].abs().sum() == 0


@pytest.mark.parametrize("cls", [MambaUNet, VMUNet])
def test_internal_pad_and_crop_equals_padding_by_hand(cls):
    """A 60x70 input is zero-padded bottom/right to 64x96 inside forward and the logits cropped back."""
    torch.manual_seed(0)
    net = cls(2, 3, **NARROW).eval()
    x = torch.randn(1, 2, 60, 70)
    with torch.no_grad():
        out = net(x)
        manual = net(torch.nn.functional.pad(x, (0, 26, 0, 4)))[..., :60, :70]
    # the same ops on the same padded values and shapes in one process round alike: equal to the bit (measured),
    # the default fp32 tolerance is slack
    torch.testing.assert_close(out, manual)


@pytest.mark.parametrize("cls", [MambaUNet, VMUNet])
@pytest.mark.parametrize("size", [(64, 96), (97, 131)])
def test_deep_supervision_outputs_match_nnunet_target_shapes(cls, size):
    torch.manual_seed(0)
    net = cls(1, 3, deep_supervision=True, **NARROW).eval()
    assert net.deep_supervision_scales == [1.0, 0.25, 0.125, 0.0625]
    with torch.no_grad():
        outs = net(torch.randn(1, 1, *size))
    assert isinstance(outs, list) and len(outs) == len(net.deep_supervision_scales)
    # batchgeneratorsv2's DownsampleSegForDSTransform produces round(size * scale)
    from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
    targets = DownsampleSegForDSTransform(net.deep_supervision_scales)(
        segmentation=torch.zeros(1, *size, dtype=torch.uint8))["segmentation"]
    for out, target in zip(outs, targets):
        assert out.shape == (1, 3, *target.shape[1:])

    net.decoder.deep_supervision = False
    with torch.no_grad():
        single = net(torch.randn(1, 1, *size))
    assert isinstance(single, torch.Tensor) and single.shape == (1, 3, *size)


@pytest.mark.parametrize("cls", [MambaUNet, VMUNet])
def test_deep_supervision_checkpoint_loads_into_inference_network(cls):
    """nnU-Net trains with deep supervision and predicts with a network built without it."""
    trained = cls(1, 2, deep_supervision=True, **NARROW)
    inference = cls(1, 2, deep_supervision=False, **NARROW)
    inference.load_state_dict(trained.state_dict())
    for key, value in inference.state_dict().items():  # copies: bit-equal
        torch.testing.assert_close(value, trained.state_dict()[key])
    assert not any(k.startswith("decoder.aux_heads") for k in inference.state_dict())
    assert n_params(trained) > n_params(inference)
    with pytest.raises(ValueError, match="deep_supervision=True"):
        inference.decoder.deep_supervision = True


@pytest.mark.parametrize("cls", [MambaUNet, VMUNet])
def test_constructor_kwargs_are_json_serialisable_and_validated(cls):
    kwargs = json.loads(json.dumps(dict(dims=[8, 16, 32], depths=[1, 1, 1],
                                        decoder_depths=[1, 1] if cls is MambaUNet else [1, 1, 1],
                                        d_state=4, drop_path_rate=0.1, deep_supervision=True)))
    net = cls(2, 3, **kwargs).eval()
    assert net.deep_supervision_scales == [1.0, 0.25, 0.125]
    with torch.no_grad():
        outs = net(torch.randn(1, 2, 40, 24))
    assert [o.shape[-2:] for o in outs] == [(40, 24), (10, 6), (5, 3)]
    with pytest.raises(ValueError, match="decoder_depths"):
        cls(2, 3, dims=(8, 16, 32), depths=(1, 1, 1), decoder_depths=(1,))
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        net(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("cls", [MambaUNet, VMUNet])
def test_every_parameter_gets_a_gradient_with_deep_supervision(cls):
    """nnU-Net's DDP runs without find_unused_parameters: each training step must reach every parameter."""
    torch.manual_seed(0)
    net = cls(2, 3, deep_supervision=True, dims=(8, 16, 32), depths=(1, 1, 1),
              decoder_depths=(1, 1) if cls is MambaUNet else (1, 1, 1)).train()
    outs = net(torch.randn(2, 2, 36, 28))
    sum(o.square().mean() for o in outs).backward()
    assert [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []

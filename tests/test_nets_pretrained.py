"""load_vmamba_pretrained with synthetic VMamba checkpoints in VMamba's own key formats (vmamba_checkpoints.py)."""
import logging
import re

import pytest
import torch

from nnunetv2_mamba.nets import MambaUNet, PretrainedCheckpointError, VMUNet, load_vmamba_pretrained
from vmamba_checkpoints import DIMS, v0_to_v2_names, vmamba_v0_state_dict


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("cls, container", [(MambaUNet, "model"), (VMUNet, "model_ema"), (MambaUNet, "state_dict"),
                                            (VMUNet, None)])
def test_v0_checkpoint_round_trips_every_encoder_tensor(tmp_path, caplog, cls, container):
    ckpt = vmamba_v0_state_dict()
    path = tmp_path / "vmamba_v0.pth"
    torch.save({container: ckpt, "epoch": 292} if container else ckpt, path)
    model = cls(3, 4, dims=DIMS)
    before = snapshot(model)
    with caplog.at_level(logging.INFO, logger="nnunetv2_mamba"):
        report = load_vmamba_pretrained(model, path)
    after = model.state_dict()
    encoder_keys = [k for k in after if k.startswith("encoder.")]
    for key in encoder_keys:  # loading copies tensors: bit-equal
        torch.testing.assert_close(after[key], ckpt[key.removeprefix("encoder.")], rtol=0, atol=0)
    assert sorted(encoder_keys) == [k for k in report.loaded]
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith("decoder."))
    assert set(report.not_loaded) == {k for k in after if k.startswith("decoder.")}
    unused = {"head.weight", "head.bias"} | {k for k in ckpt if k.startswith("layers.2.blocks.2.")}
    if cls is VMUNet:  # no final encoder norm in VM-UNet
        unused |= {"norm.weight", "norm.bias"}
    assert set(report.skipped) == unused
    assert report.shape_mismatched == [] and report.adapted == [] and report.checkpoint_format == "v0"
    assert f"loaded {len(encoder_keys)} tensors" in caplog.text


@pytest.mark.parametrize("cls", [MambaUNet, VMUNet])
def test_decoder_initialised_from_mirrored_encoder_stages(tmp_path, cls):
    ckpt = vmamba_v0_state_dict()
    torch.save({"model": ckpt}, tmp_path / "v0.pth")
    model = cls(3, 4, dims=DIMS)
    before = snapshot(model)
    load_vmamba_pretrained(model, tmp_path / "v0.pth", init_decoder_from_encoder=True)
    after = model.state_dict()
    # Mamba-UNet: layers_up.{3-i} <- layers.i for i = 0..2 (layers_up.0 is a bare expand);
    # VM-UNet: the same mapping for i = 0..3, and its 1-block layers_up.3 takes only block 0.
    expected = {0: 1 if cls is VMUNet else 2, 1: 2, 2: 2, 3: 2 if cls is VMUNet else 0}
    copied = set()
    for stage, n_blocks in expected.items():
        for key in ckpt:
            m = re.match(rf"layers\.{stage}\.blocks\.(\d+)\.(.*)", key)
            if m and int(m[1]) < n_blocks:
                target = f"decoder.layers_up.{3 - stage}.blocks.{m[1]}.{m[2]}"
                torch.testing.assert_close(after[target], ckpt[key], rtol=0, atol=0)  # a copy: bit-equal
                copied.add(target)
    assert copied
    untouched = [k for k in after if k.startswith("decoder.") and k not in copied]
    assert untouched and all(torch.equal(after[k], before[k]) for k in untouched)


def test_v2_named_checkpoint_maps_where_shapes_fit(tmp_path):
    ckpt = vmamba_v0_state_dict()
    torch.save({"model": v0_to_v2_names(ckpt)}, tmp_path / "v2.pth")
    model = MambaUNet(3, 4, dims=DIMS)
    report = load_vmamba_pretrained(model, tmp_path / "v2.pth")
    after = model.state_dict()
    assert report.checkpoint_format == "v2+"
    for key in report.loaded:  # a copy: bit-equal
        torch.testing.assert_close(after[key], ckpt[key.removeprefix("encoder.")], rtol=0, atol=0)
    assert "encoder.layers.3.blocks.1.self_attention.A_logs" in report.loaded
    assert "encoder.norm.weight" in report.loaded and "encoder.patch_embed.proj.weight" in report.loaded
    assert report.shape_mismatched == [
        "encoder.layers.0.blocks.1.self_attention.in_proj.weight <- layers.0.blocks.1.self_attention.in_proj.weight:"
        " (16, 8) vs (32, 8)"]
    assert "layers.0.blocks.0.mlp.fc1.weight" in report.skipped and "layers.0.downsample.1.weight" in report.skipped
    assert "encoder.layers.0.downsample.reduction.weight" in report.not_loaded


@pytest.mark.parametrize("in_chans", [1, 5])
def test_three_channel_stem_is_adapted_like_timm(tmp_path, in_chans):
    ckpt = vmamba_v0_state_dict()
    torch.save({"model": ckpt}, tmp_path / "v0.pth")
    model = VMUNet(in_chans, 2, dims=DIMS)
    report = load_vmamba_pretrained(model, tmp_path / "v0.pth")
    stem = ckpt["patch_embed.proj.weight"]
    if in_chans == 1:
        expected = stem.sum(1, keepdim=True)
    else:  # channels cycle R, G, B, R, G, rescaled so the summed response keeps its magnitude
        expected = stem[:, [0, 1, 2, 0, 1]] * (3 / 5)
    # timm's adapt_input_conv does these fp32 ops; summed in another order, the 3 terms would differ by at most
    # 2·γ_2·Σ|w| < 5e-6 for these weights (|w| < 7; tests/helpers.py), inside the default atol 1e-5
    torch.testing.assert_close(model.encoder.patch_embed.proj.weight.detach(), expected)
    assert report.adapted == ["encoder.patch_embed.proj.weight"]
    assert "encoder.patch_embed.proj.weight" in report.loaded


class NotATensor:
    pass


def test_bad_files_give_one_clear_error(tmp_path):
    model = MambaUNet(1, 2, dims=DIMS)
    with pytest.raises(PretrainedCheckpointError, match="not found.*Expected a VMamba classification checkpoint"):
        load_vmamba_pretrained(model, tmp_path / "missing.pth")
    (tmp_path / "corrupt.pth").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(PretrainedCheckpointError, match="could not read .*Expected a VMamba"):
        load_vmamba_pretrained(model, tmp_path / "corrupt.pth")
    torch.save({"model": vmamba_v0_state_dict(), "config": NotATensor()}, tmp_path / "pickled_config.pth")
    with pytest.raises(PretrainedCheckpointError, match=r"pickles Python objects.*save its state dict alone"):
        load_vmamba_pretrained(model, tmp_path / "pickled_config.pth")
    torch.save({"model": {"backbone.conv.weight": torch.ones(3)}}, tmp_path / "unrelated.pth")
    with pytest.raises(PretrainedCheckpointError, match="no tensor this MambaUNet can use.*layers.0.blocks.0"):
        load_vmamba_pretrained(model, tmp_path / "unrelated.pth")
    torch.save({"model": vmamba_v0_state_dict(dims=(16, 32, 64, 128))}, tmp_path / "wider.pth")
    with pytest.raises(PretrainedCheckpointError, match="widths matching"):
        load_vmamba_pretrained(model, tmp_path / "wider.pth")


def test_paper_width_vmamba_tiny_v0_fills_the_paper_mamba_unet(tmp_path):
    """VMamba-T v0 widths (dims 96..768; stage 2 deeper than the U-Net's, shortened from 9 to 4 blocks to keep the
    file small) against the paper's Mamba-UNet, as the original code's load_from does."""
    ckpt = vmamba_v0_state_dict(dims=(96, 192, 384, 768), depths=(2, 2, 4, 2), num_classes=1000)
    torch.save({"model": ckpt}, tmp_path / "vssmtiny.pth")
    model = MambaUNet(3, 4)
    report = load_vmamba_pretrained(model, tmp_path / "vssmtiny.pth", init_decoder_from_encoder=True)
    assert report.shape_mismatched == [] and report.adapted == []
    assert not [k for k in report.not_loaded if k.startswith("encoder.")]
    decoder_loaded = {k.split(".blocks.")[0] for k in report.loaded if k.startswith("decoder.")}
    assert decoder_loaded == {"decoder.layers_up.1", "decoder.layers_up.2", "decoder.layers_up.3"}
    assert set(report.skipped) == {"head.weight", "head.bias"} | {
        k for k in ckpt if re.match(r"layers\.2\.blocks\.[23]\.", k)}

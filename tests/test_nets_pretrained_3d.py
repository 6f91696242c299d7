"""A 2D VMamba checkpoint (written here) inflated into 3D networks: every encoder tensor arrives, by the documented
rules (docs/three_d.md, "Pretrained weights in 3D"), and the inflated layers answer a depth-constant volume as the
2D layers answer its slice."""
import pytest
import torch
from timm.models import adapt_input_conv

from nnunetv2_mamba.nets import MambaUNet, VMUNet, load_vmamba_pretrained
from nnunetv2_mamba.nets.patches import PatchEmbed, PatchMerging
from nnunetv2_mamba.nets.vmamba_inflation import image_direction_sources
from vmamba_checkpoints import DIMS, vmamba_v0_state_dict

DIRECTION_KEYS = ("x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds")


@pytest.fixture
def checkpoint(tmp_path):
    ckpt = vmamba_v0_state_dict()
    torch.save({"model": ckpt}, tmp_path / "vmamba_v0.pth")
    return ckpt, tmp_path / "vmamba_v0.pth"


def test_direction_mapping_takes_whole_2d_directions():
    assert image_direction_sources(6) == [0, 1, 1, 2, 3, 3]
    assert image_direction_sources(4) == [0, 1, 2, 3]
    assert image_direction_sources(2) == [0, 2]


@pytest.mark.parametrize("cls", [MambaUNet, VMUNet])
def test_every_encoder_tensor_is_loaded_by_its_rule(cls, checkpoint, caplog):
    ckpt, path = checkpoint
    model = cls(1, 3, dims=DIMS, spatial_dims=3)
    report = load_vmamba_pretrained(model, path, init_decoder_from_encoder=True)
    after = model.state_dict()
    assert report.shape_mismatched == [] and report.adapted == ["encoder.patch_embed.proj.weight"]
    assert not [k for k in report.not_loaded if k.startswith("encoder.")]
    assert any(k.startswith("decoder.") and k.endswith("conv3d.weight") for k in report.inflated)
    sources = image_direction_sources(6)
    for key in report.loaded:
        source = ckpt[key.removeprefix("encoder.").replace("conv3d", "conv2d")] if key.startswith("encoder.") else None
        if source is None:
            continue
        name, value = key.rsplit(".", 1)[-1], after[key]
        if key == "encoder.patch_embed.proj.weight":
            expected = adapt_input_conv(1, source)[:, :, None].expand(-1, -1, 4, -1, -1) / 4
        elif key.endswith("conv3d.weight"):
            expected = source[:, :, None].expand(-1, -1, 3, -1, -1) / 3
        elif name in DIRECTION_KEYS:
            expected = source.reshape(4, -1, *source.shape[1:])[sources].reshape(value.shape)
        elif ".downsample." in key:
            continue  # checked by what the layer computes, below
        else:
            expected = source
        torch.testing.assert_close(value, expected, rtol=0, atol=0, msg=key)
    assert f"{len(report.inflated)} inflated from 2D to 3D" in report.summary()


def test_inflated_stem_and_merging_answer_a_depth_constant_volume_like_2d(checkpoint):
    ckpt, path = checkpoint
    model = MambaUNet(3, 2, dims=DIMS, spatial_dims=3)
    load_vmamba_pretrained(model, path)
    stem_2d, merging_2d = PatchEmbed(3, DIMS[0], (4, 4)), PatchMerging(DIMS[0], DIMS[1], (2, 2))
    stem_2d.load_state_dict({k.removeprefix("patch_embed."): v for k, v in ckpt.items() if "patch_embed." in k})
    merging_2d.load_state_dict({k.removeprefix("layers.0.downsample."): v for k, v in ckpt.items()
                                if k.startswith("layers.0.downsample.")})
    image = torch.randn(1, 3, 16, 24)
    volume = image[:, :, None].expand(-1, -1, 8, -1, -1)
    with torch.no_grad():
        features_2d, features_3d = stem_2d(image), model.encoder.patch_embed(volume)
        merged_2d, merged_3d = merging_2d(features_2d), model.encoder.layers[0].downsample(features_3d)
    for depth in range(2):
        torch.testing.assert_close(features_3d[:, depth], features_2d, rtol=1e-5, atol=1e-5)
    for depth in range(1):
        torch.testing.assert_close(merged_3d[:, depth], merged_2d, rtol=1e-4, atol=1e-5)


def test_anisotropic_geometry_copies_where_depth_is_kept_and_reports_what_has_no_2d_counterpart(checkpoint):
    ckpt, path = checkpoint
    model = VMUNet(3, 2, dims=DIMS, spatial_dims=3, num_directions=4, patch_size=(1, 4, 4),
                   merge_factors=[(1, 2, 2), (2, 1, 2), (2, 2, 2)])
    report = load_vmamba_pretrained(model, path)
    after = model.state_dict()
    torch.testing.assert_close(after["encoder.patch_embed.proj.weight"][:, :, 0], ckpt["patch_embed.proj.weight"],
                               rtol=0, atol=0)
    torch.testing.assert_close(after["encoder.layers.0.downsample.reduction.weight"],
                               ckpt["layers.0.downsample.reduction.weight"], rtol=0, atol=0)
    for name in DIRECTION_KEYS:  # K = 4: 3D direction k is 2D direction k
        key = f"layers.1.blocks.0.self_attention.{name}"
        torch.testing.assert_close(after["encoder." + key], ckpt[key], rtol=0, atol=0)
    assert sorted(m.split(" <- ")[0] for m in report.shape_mismatched) == [
        f"encoder.layers.1.downsample.{k}" for k in ("norm.bias", "norm.weight", "reduction.weight")]
    assert all("has no 3D inflation" in m for m in report.shape_mismatched)

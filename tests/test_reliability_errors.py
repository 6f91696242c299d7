"""Bad input the other reliability files do not reach: another network's or channel count's weights loaded
strictly (nnU-Net's predictor path: ``network.load_state_dict``), and an interrupted checkpoint save.
(Cascade configurations are supported: test_nnunet_3d.py.)"""
import pytest
import torch

from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.nets.state_dict import IncompatibleWeightsError

DIMS = (8, 16, 32, 64)


def test_strict_load_of_another_architecture_names_the_fix():
    with pytest.raises(IncompatibleWeightsError, match=r"weights of another network than this VMUNet.*lack 34 of its tensors"
                                              r".*Use the trainer \(-tr\) and plans \(-p\)"):
        VMUNet(1, 4, dims=DIMS).load_state_dict(MambaUNet(1, 4, dims=DIMS).state_dict())


def test_strict_load_with_another_channel_count_or_width_names_the_fix():
    with pytest.raises(IncompatibleWeightsError, match=r"trained on 3 input channel\(s\) do not fit this MambaUNet, which "
                                              r"takes 1\. Give each case exactly 3 image file\(s\) \(_0000 \.\.\. _0002"):
        MambaUNet(1, 4, dims=DIMS).load_state_dict(MambaUNet(3, 4, dims=DIMS).state_dict())
    with pytest.raises(IncompatibleWeightsError, match=r"other widths than this MambaUNet.*Use the plans \(-p\)"):
        MambaUNet(1, 4, dims=DIMS).load_state_dict(MambaUNet(1, 4, dims=(8, 16, 32, 48)).state_dict())


def test_fitting_loads_still_work():
    trained = MambaUNet(1, 4, dims=DIMS, deep_supervision=True)
    inference = MambaUNet(1, 4, dims=DIMS, deep_supervision=False)
    inference.load_state_dict(trained.state_dict())  # nnU-Net's predictor: DS heads are dropped
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in inference.state_dict().items())
    partial = {k: v for k, v in trained.state_dict().items() if k.startswith("encoder.")}
    assert MambaUNet(1, 4, dims=DIMS).load_state_dict(partial, strict=False).unexpected_keys == []


def test_a_save_interrupted_midway_keeps_the_previous_checkpoint(tmp_path):
    from nnunetv2_mamba.training.checkpoints import save_atomically

    target = tmp_path / "checkpoint_latest.pth"
    torch.save({"network_weights": {"w": torch.ones(2)}}, target)

    def killed_while_writing(name):
        with open(name, "wb") as file:
            file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this line runs

    with pytest.raises(KeyboardInterrupt):
        save_atomically(killed_while_writing, target)
    assert torch.equal(torch.load(target, weights_only=True)["network_weights"]["w"], torch.ones(2))

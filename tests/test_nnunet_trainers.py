"""The trainer overrides in process: network kwargs from plans, deep supervision, compile switch, environment."""
from __future__ import annotations

import pytest
import torch
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.nets.drop_path import DropPath
from nnunetv2_mamba.training import trainers
from nnunetv2_mamba.training.budget import Budget, BudgetNameError, budget_trainer_name, split_budget_name
from nnunetv2_mamba.training.recipes import DEFAULT_RECIPE

PLAIN = "dynamic_network_architectures.architectures.unet.PlainConvUNet"


def configuration(network_class_name: str, arch_kwargs: dict, patch_size=(120, 88)) -> ConfigurationManager:
    return ConfigurationManager({"patch_size": list(patch_size), "architecture": {
        "network_class_name": network_class_name, "arch_kwargs": arch_kwargs, "_kw_requires_import": []}})


def bare_trainer(cls, network, patch_size=(120, 88), device="cpu"):
    """A trainer object with only what the overridden methods read (nnU-Net's __init__ needs a dataset)."""
    trainer = object.__new__(cls)
    trainer.network = network
    trainer.enable_deep_supervision = cls.recipe.deep_supervision
    trainer.configuration_manager = configuration(PLAIN, {}, patch_size)
    trainer.device = torch.device(device)
    return trainer


def test_network_kwargs_come_from_plans_naming_the_same_network_else_from_the_trainer():
    ours = configuration("nnunetv2_mamba.nets.vm_unet.VMUNet", {"dims": [24, 48, 96, 192], "d_state": 8})
    recipe = {} if DEFAULT_RECIPE["VMUNet"].drop_path_rate is None else {
        "drop_path_rate": DEFAULT_RECIPE["VMUNet"].drop_path_rate}  # the default recipe's, over any plans'
    assert trainers.nnUNetTrainerVMUNet_AdamW2em3Cosine.network_kwargs(ours) == {"dims": [24, 48, 96, 192],
                                                                                 "d_state": 8}
    assert trainers.nnUNetTrainerVMUNet.network_kwargs(ours) == {"dims": [24, 48, 96, 192], "d_state": 8, **recipe}
    assert trainers.nnUNetTrainerMambaUNet.network_kwargs(ours) == recipe  # another network's plans
    assert trainers.nnUNetTrainerVMUNet.network_kwargs(configuration(PLAIN, {"n_stages": 6})) == recipe
    assert trainers.nnUNetTrainerVMUNet_Tiny.network_kwargs(ours) == {"dims": (16, 32, 64, 128), "d_state": 8,
                                                                     **recipe}
    net = trainers.nnUNetTrainerMambaUNet_Tiny.build_network_architecture(None, configuration(PLAIN, {}), 2, 3, False)
    assert isinstance(net, MambaUNet) and net.input_channels == 2 and net.num_classes == 3
    assert net.decoder.deep_supervision is False


def test_a_recipes_drop_path_rate_overrides_the_plans_and_leaves_the_parameters_as_they_are():
    plans = configuration("nnunetv2_mamba.nets.vm_unet.VMUNet", {"dims": [8, 16, 32, 64], "drop_path_rate": 0.3})
    with_drop_path = trainers.nnUNetTrainerVMUNet_AdamW2em3Cosine
    without = trainers.nnUNetTrainerVMUNet_AdamW2em3CosineNoDropPath
    assert with_drop_path.network_kwargs(plans)["drop_path_rate"] == 0.3  # the plans' rate
    assert without.network_kwargs(plans) == {"dims": [8, 16, 32, 64], "drop_path_rate": 0.0}
    nets = [cls.build_network_architecture(None, plans, 1, 3, True) for cls in (with_drop_path, without)]
    rates = [[m.drop_prob for m in net.modules() if isinstance(m, DropPath)] for net in nets]
    assert max(rates[0]) == pytest.approx(0.3) and set(rates[1]) == {0.0}
    shapes = [{k: v.shape for k, v in net.state_dict().items()} for net in nets]
    assert shapes[0] == shapes[1]  # a checkpoint of one loads into the other


def test_deep_supervision_scales_give_nnunet_targets_shaped_like_the_outputs():
    trainer = bare_trainer(trainers.nnUNetTrainerVMUNet, VMUNet(1, 4, dims=(8, 16, 32, 64), deep_supervision=True))
    scales = trainer._get_deep_supervision_scales()
    assert scales == [[s, s] for s in trainer.network.deep_supervision_scales]
    trainer.set_deep_supervision_enabled(True)
    outputs = trainer.network(torch.randn(2, 1, 120, 88))
    targets = DownsampleSegForDSTransform(scales)(segmentation=torch.zeros(1, 120, 88))["segmentation"]
    assert [tuple(o.shape[2:]) for o in outputs] == [tuple(t.shape[1:]) for t in targets]
    trainer.set_deep_supervision_enabled(False)
    assert trainer.network(torch.randn(1, 1, 120, 88)).shape == (1, 4, 120, 88)


def test_without_deep_supervision_nnunets_final_switch_back_on_is_harmless():
    cls = trainers.nnUNetTrainerVMUNet_NoDS
    trainer = bare_trainer(cls, VMUNet(1, 4, dims=(8, 16, 32, 64), deep_supervision=False))
    assert trainer._get_deep_supervision_scales() is None
    trainer.set_deep_supervision_enabled(True)  # perform_actual_validation ends with this call
    assert trainer.network.decoder.deep_supervision is False


def test_torch_compile_only_when_nnunet_compile_asks(monkeypatch):
    trainer = bare_trainer(trainers.nnUNetTrainerMambaUNet, None, device="cuda")
    monkeypatch.delenv("nnUNet_compile", raising=False)
    assert trainer._do_i_compile() is False
    monkeypatch.setenv("nnUNet_compile", "t")
    assert trainer._do_i_compile() is True


def test_budget_names_have_one_spelling_and_nnunets_validation_ratio():
    assert split_budget_name("nnUNetTrainerVMUNet_PaperRecipe_8ep25it") == ("nnUNetTrainerVMUNet_PaperRecipe",
                                                                          Budget(8, 25, 5))
    assert split_budget_name("nnUNetTrainer_1000ep250it") == ("nnUNetTrainer", Budget(1000, 250, 50))
    assert split_budget_name("nnUNetTrainer_1ep2it")[1] == Budget(1, 2, 1)  # at least one validation iteration
    assert split_budget_name("nnUNetTrainer_5epochs") is None and split_budget_name("nnUNetTrainerVMUNet") is None
    assert budget_trainer_name("nnUNetTrainerMambaUNet_Tiny", 3, 7) == "nnUNetTrainerMambaUNet_Tiny_3ep7it"
    with pytest.raises(BudgetNameError, match="without leading zeros, nnUNetTrainer_8ep25it"):
        split_budget_name("nnUNetTrainer_08ep25it")
    with pytest.raises(BudgetNameError, match="at least 1 epoch"):
        split_budget_name("nnUNetTrainer_0ep25it")
    with pytest.raises(BudgetNameError, match="has one already; name one budget, e.g. nnUNetTrainer_3ep4it"):
        split_budget_name("nnUNetTrainer_1ep2it_3ep4it")
    with pytest.raises(BudgetNameError, match="give the trainer without it, nnUNetTrainer"):
        budget_trainer_name("nnUNetTrainer_1ep2it", 3, 4)

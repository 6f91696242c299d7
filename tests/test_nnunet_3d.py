"""nnU-Net's 3d_fullres configuration, end to end through the stock nnUNetv2_* commands on CPU (nnunet_cli.py).

One small synthetic volume dataset (16 x 32 x 32 voxels of 2 x 1 x 1 mm, so the network halves the slice axis
only once in its stem) is planned and preprocessed once per module by nnU-Net's planner and ours (VM-UNet's plans;
Mamba-UNet's planner differs only in its network); the tiny Mamba-UNet goes through the whole cycle on the stock
plans with 2 iterations per epoch, and the networks our plans and the stock plans describe are checked in process
(training on our plans differs only in where the kwargs come from). About 3 minutes on 2 cores, most of it the
start-up of the nine commands and of the worker processes nnU-Net spawns for preprocessing and export.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_mamba.nets import VMUNet
from nnunetv2_mamba.training import trainers
from nnunetv2_mamba.training.checkpoints import read_training_checkpoint
from helpers import run
from nnunet_cli import (assert_evaluates_every_label, assert_export_reinstall_predicts_the_same,
                        assert_label_maps_like_inputs, model_folder, planning_environment, predict, read_predictions,
                        train, workspace_for)

DATASET_ID = 901
DATASET = f"Dataset{DATASET_ID}_Volumes"
SHAPE, SPACING = (16, 32, 32), (2.0, 1.0, 1.0)  # (z, y, x)
LABELS = {0, 1, 2}
CASES = ("volume_000",)  # the images predicted


def write_volume_dataset(raw: Path, num_cases: int, seed: int = 0) -> None:
    """Cases with an ellipsoid (label 1) around a brighter core (label 2) at a random place, and noise."""
    folder = raw / DATASET
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip(SHAPE, SPACING)), indexing="ij")
    for index in range(num_cases):
        center = rng.uniform([10, 10, 10], [22, 22, 22])
        radii = rng.uniform([6, 6, 6], [10, 12, 12])
        distance = np.sqrt(sum(((c - m) / r) ** 2 for c, m, r in zip((z, y, x), center, radii)))
        labels = np.where(distance < 0.5, 2, np.where(distance < 1, 1, 0)).astype(np.uint8)
        image = (labels * 100 + rng.normal(0, 20, SHAPE)).astype(np.float32)
        for array, path in ((image, folder / "imagesTr" / f"volume_{index:03d}_0000.nii.gz"),
                            (labels, folder / "labelsTr" / f"volume_{index:03d}.nii.gz")):
            volume = sitk.GetImageFromArray(array)
            volume.SetSpacing(SPACING[::-1])
            sitk.WriteImage(volume, str(path))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "shell": 1, "core": 2},
        "numTraining": num_cases, "file_ending": ".nii.gz"}))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    """Raw volumes, stock nnUNetPlans and our nnUNetVMUNetPlans, preprocessed (3d_fullres)."""
    root = tmp_path_factory.mktemp("nnunet3d")
    env = planning_environment(root)
    write_volume_dataset(root / "raw", num_cases=5)  # nnU-Net's fewest for 5 folds: 1 validation case
    run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "3d_fullres", "-np", "1", "-npfp", "1"], env)
    run([sys.executable, "-m", "nnunetv2_mamba", "plan_and_preprocess", "-d", str(DATASET_ID), "-c", "3d_fullres",
         "-np", "1", "--networks", "VMUNet"], env)
    return workspace_for(root, env, DATASET_ID, DATASET, CASES, LABELS)


def plans_manager(ws: dict, plans: str) -> PlansManager:
    return PlansManager(str(ws["preprocessed"] / f"{plans}.json"))


def test_our_3d_plans_divide_the_patch_by_the_networks_stride_on_every_axis(workspace):
    plans = plans_manager(workspace, "nnUNetVMUNetPlans")
    assert set(plans.available_configurations) == {"2d", "3d_fullres"}  # too small for a 3d_lowres
    configuration = plans.get_configuration("3d_fullres")
    kwargs = configuration.network_arch_init_kwargs
    assert configuration.network_arch_class_name == f"{VMUNet.__module__}.{VMUNet.__name__}"
    assert (kwargs["spatial_dims"], kwargs["dims"], kwargs["num_directions"]) == (3, [96, 192, 384, 768], 6)
    assert (kwargs["patch_size"], kwargs["merge_factors"]) == ([2, 4, 4], [[2, 2, 2]] * 3)  # 2 mm slices
    net = trainers.nnUNetTrainerVMUNet_Tiny.build_network_architecture(None, configuration, 1, 3, True)
    assert isinstance(net, VMUNet) and net.size_divisor == (16, 32, 32)
    assert list(configuration.patch_size) == [16, 32, 32]  # the median image, a multiple of the divisor
    assert all(p % d == 0 for p, d in zip(configuration.patch_size, net.size_divisor))
    assert configuration.batch_size >= 2
    assert (workspace["preprocessed"] / configuration.data_identifier).is_dir()


def test_stock_3d_plans_build_a_network_whose_outputs_are_nnunets_deep_supervision_targets(workspace):
    configuration = plans_manager(workspace, "nnUNetPlans").get_configuration("3d_fullres")
    cls = trainers.nnUNetTrainerVMUNet_Tiny
    net = cls.build_network_architecture(None, configuration, 1, 3, True)
    assert net.spatial_dims == 3 and net.geometry.patch_size == (2, 4, 4)
    trainer = object.__new__(cls)
    trainer.network, trainer.enable_deep_supervision, trainer.configuration_manager = net, True, configuration
    scales = trainer._get_deep_supervision_scales()
    patch = tuple(configuration.patch_size)
    with torch.no_grad():
        outputs = net(torch.randn(1, 1, *patch))
    targets = DownsampleSegForDSTransform(scales)(segmentation=torch.zeros(1, *patch))["segmentation"]
    assert [tuple(o.shape[2:]) for o in outputs] == [tuple(t.shape[1:]) for t in targets]
    assert scales[1] == [0.5, 0.25, 0.25]


def test_a_cascade_stage_takes_the_previous_stages_one_hot_segmentation_as_input_channels(workspace):
    configuration = plans_manager(workspace, "nnUNetPlans").get_configuration("3d_fullres")
    configuration.configuration["previous_stage"] = "3d_lowres"  # what a 3d_cascade_fullres configuration adds
    net = trainers.nnUNetTrainerMambaUNet_Tiny.build_network_architecture(None, configuration, 1 + 3, 3, False)
    with torch.no_grad():
        assert net(torch.randn(1, 4, 16, 32, 32)).shape == (1, 3, 16, 32, 32)


def test_mamba_unet_3d_fullres_trains_resumes_predicts_evaluates_and_survives_export(workspace, tmp_path):
    """One epoch; then, from its checkpoint as the latest of a 2-epoch run, --c trains the second epoch (a budget
    is part of the trainer's name, so the longer run is another trainer's folder); then predict, evaluate, export,
    reinstall and predict the same."""
    first, resumed, plans = "nnUNetTrainerMambaUNet_Tiny_1ep2it", "nnUNetTrainerMambaUNet_Tiny_2ep2it", "nnUNetPlans"
    train(workspace, "3d_fullres", first, plans)
    fold = model_folder(workspace, "3d_fullres", resumed, plans) / "fold_0"
    fold.mkdir(parents=True)
    shutil.copy(model_folder(workspace, "3d_fullres", first, plans) / "fold_0" / "checkpoint_final.pth",
                fold / "checkpoint_latest.pth")
    train(workspace, "3d_fullres", resumed, plans, "--c")
    checkpoint = read_training_checkpoint(fold / "checkpoint_final.pth")
    assert checkpoint["current_epoch"] == 2 and checkpoint["trainer_name"] == resumed
    assert len(checkpoint["logging"]["train_losses"]) == 2  # epoch 0 from the first run, epoch 1 after --c
    assert (fold.parent / "plans.json").is_file() and (fold / "validation" / "summary.json").is_file()

    predict(workspace, "3d_fullres", resumed, plans, tmp_path / "pred")
    predictions = read_predictions(tmp_path / "pred")
    assert_label_maps_like_inputs(workspace, predictions)
    assert_evaluates_every_label(workspace, fold.parent, tmp_path / "pred")
    assert_export_reinstall_predicts_the_same(workspace, "3d_fullres", resumed, plans, predictions, tmp_path)

"""nnU-Net integration, end to end through the stock nnUNetv2_* commands run as subprocesses on CPU (2d; the 3d
configurations are in test_nnunet_3d.py, both through the helpers of nnunet_cli.py).

One phantom dataset is planned and preprocessed once per module (stock planner and ours); each test then trains a
tiny trainer for a few iterations. Budget: a few minutes on 2 cores.
"""
from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from nnunet_cli import (REPO, assert_label_maps_like_inputs, check_full_cycle, planning_environment, predict,
                        read_predictions, run, train)
from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.phantom import write_phantom_dataset

DATASET = "Dataset900_CardiacPhantom"
IMAGE_SIZE = (128, 112)
LABELS = {0, 1, 2, 3}
CASES = ("phantom_000", "phantom_001")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    """Raw phantom, stock nnUNetPlans and our nnUNetMambaUNetPlans/nnUNetVMUNetPlans, all preprocessed (2d)."""
    root = tmp_path_factory.mktemp("nnunet")
    env = planning_environment(root)
    write_phantom_dataset(root / "raw", dataset_id=900, num_cases=10, image_size=IMAGE_SIZE, seed=0)
    run(["nnUNetv2_plan_and_preprocess", "-d", "900", "-c", "2d", "-np", "2", "-npfp", "2"], env)
    run([sys.executable, "-m", "nnunetv2_mamba", "plan_and_preprocess", "-d", "900", "-np", "2"], env)
    images = root / "input"
    images.mkdir()
    for case in CASES:
        shutil.copy(root / "raw" / DATASET / "imagesTr" / f"{case}_0000.nii.gz", images)
    return {"root": root, "env": {**env, "nnUNet_n_proc_DA": "0"}, "input": images, "dataset_id": "900",
            "dataset": DATASET, "cases": CASES, "labels": LABELS, "preprocessed": root / "preprocessed" / DATASET}


def test_our_plans_are_2d_multiples_of_32_with_the_network_and_a_memory_based_batch(workspace):
    for plans_name, network in (("nnUNetMambaUNetPlans", MambaUNet), ("nnUNetVMUNetPlans", VMUNet)):
        plans = json.loads((workspace["preprocessed"] / f"{plans_name}.json").read_text())
        assert list(plans["configurations"]) == ["2d"]
        config = plans["configurations"]["2d"]
        assert all(s % 32 == 0 for s in config["patch_size"]) and len(config["patch_size"]) == 2
        assert config["batch_size"] >= 2
        assert config["architecture"]["network_class_name"] == f"{network.__module__}.{network.__name__}"
        assert config["architecture"]["arch_kwargs"]["dims"] == [96, 192, 384, 768]
        assert (workspace["preprocessed"] / config["data_identifier"]).is_dir()


def test_mamba_unet_trains_resumes_predicts_evaluates_and_survives_export(workspace, tmp_path):
    check_full_cycle(workspace, "2d", "nnUNetTrainerMambaUNet_Tiny", "nnUNetMambaUNetPlans", tmp_path)


def test_vm_unet_trains_and_predicts_with_a_stock_patch_not_divisible_by_32(workspace, tmp_path):
    stock = json.loads((workspace["preprocessed"] / "nnUNetPlans.json").read_text())
    stock["plans_name"] = "nnUNetPlansOddPatch"
    stock["configurations"]["2d"]["patch_size"] = [120, 88]  # same preprocessed data, ragged patch
    (workspace["preprocessed"] / "nnUNetPlansOddPatch.json").write_text(json.dumps(stock))
    trainer, plans = "nnUNetTrainerVMUNet_Tiny", "nnUNetPlansOddPatch"
    output = train(workspace, "2d", trainer, plans) + predict(workspace, "2d", trainer, plans, tmp_path / "pred")
    assert_label_maps_like_inputs(workspace, read_predictions(tmp_path / "pred"))
    ours = [line for line in output.splitlines()
            if "warn" in line.lower() and (str(REPO / "nnunetv2_mamba") in line or "pad" in line.lower())]
    assert ours == []


def test_trainer_shim_finds_every_trainer_from_a_fresh_python(tmp_path):
    from nnunetv2_mamba.training.search_path import trainers_folder
    from nnunetv2_mamba.training.trainers import __all__ as names

    script = ("import sys; from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f; "
              "print(*[f(n).__module__ for n in sys.argv[1:]])")
    for folder in (REPO / "trainers", trainers_folder()):
        env = {**os.environ, "nnUNet_extTrainer": f"{tmp_path}{os.pathsep}{folder}"}
        output = run([sys.executable, "-c", script, *names], env)
        assert output.splitlines()[-1].split() == ["nnunetv2_mamba.training.trainers"] * len(names)


def test_a_broken_install_is_reported_without_stopping_nnunets_search_of_other_folders(tmp_path):
    (tmp_path / "my_trainers.py").write_text(
        "from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer\n"
        "class nnUNetTrainerMine(nnUNetTrainer):\n    pass\n")
    script = ("import sys; sys.modules['nnunetv2_mamba.training.trainers'] = None  # importing it now fails\n"
              "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f\n"
              "print(f('nnUNetTrainerMine').__name__)")
    env = {**os.environ, "nnUNet_extTrainer": f"{REPO / 'trainers'}{os.pathsep}{tmp_path}"}
    output = run([sys.executable, "-c", script], env)
    assert "nnunetv2_mamba: its trainers are unavailable because importing them failed" in output
    assert output.splitlines()[-1] == "nnUNetTrainerMine"

"""nnU-Net integration, end to end through the stock nnUNetv2_* commands run as subprocesses on CPU (2d; the 3d
configurations are in test_nnunet_3d.py, both through the helpers of nnunet_cli.py).

One phantom dataset is planned and preprocessed once per module (stock planner and ours); each test then trains a
tiny trainer with a budget of a few iterations in its name (``..._Tiny_1ep2it``). A few minutes on 2 cores.
"""
from __future__ import annotations

import json
import os
import sys

import pytest

from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.synthetic import write_phantom_dataset
from nnunetv2_mamba.training.checkpoints import read_training_checkpoint
from nnunetv2_mamba.training.recipes import DEFAULT_RECIPE
from helpers import DATASET, REPO, run
from nnunet_cli import (assert_evaluates_every_label, assert_export_reinstall_predicts_the_same,
                        assert_label_maps_like_inputs, model_folder, planning_environment, predict, read_predictions,
                        train, workspace_for)

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
    return workspace_for(root, env, 900, DATASET, CASES, LABELS)


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


def test_mamba_unet_trains_validates_predicts_evaluates_and_survives_export(workspace, tmp_path):
    """A budget variant synthesised by name is found by every nnU-Net command in a fresh process: training,
    --val, and prediction (which looks up the trainer name stored in the checkpoint)."""
    trainer, plans = "nnUNetTrainerMambaUNet_Tiny_1ep2it", "nnUNetMambaUNetPlans"
    fold = model_folder(workspace, "2d", trainer, plans) / "fold_0"
    log = train(workspace, "2d", trainer, plans)
    assert "Training budget: 1 epochs x 2 iterations (1 validation iterations per epoch)" in log
    checkpoint = read_training_checkpoint(fold / "checkpoint_final.pth")
    assert checkpoint["current_epoch"] == 1 and checkpoint["trainer_name"] == trainer
    assert len(checkpoint["logging"]["train_losses"]) == 1
    setup = json.loads((fold / "training_setup.json").read_text())
    assert setup["trainer"] == trainer and (setup["epochs"], setup["iterations_per_epoch"]) == (1, 2)
    optimizer = {"sgd": "SGD", "adamw": "AdamW"}[DEFAULT_RECIPE["MambaUNet"].optimizer]
    assert setup["network"] == "MambaUNet" and setup["optimizer"] == optimizer and setup["non_finite_guard"]
    recipe_rate = DEFAULT_RECIPE["MambaUNet"].drop_path_rate
    assert setup["drop_path_rate"] == pytest.approx(0.2 if recipe_rate is None else recipe_rate)  # plans say 0.2
    (fold / "validation" / "summary.json").unlink()
    train(workspace, "2d", trainer, plans, "--val")
    assert (fold.parent / "plans.json").is_file() and (fold / "validation" / "summary.json").is_file()

    predict(workspace, "2d", trainer, plans, tmp_path / "pred")
    predictions = read_predictions(tmp_path / "pred")
    assert_label_maps_like_inputs(workspace, predictions)
    assert_evaluates_every_label(workspace, fold.parent, tmp_path / "pred")
    assert_export_reinstall_predicts_the_same(workspace, "2d", trainer, plans, predictions, tmp_path)


def test_vm_unet_trains_and_predicts_with_a_stock_patch_not_divisible_by_32(workspace, tmp_path):
    stock = json.loads((workspace["preprocessed"] / "nnUNetPlans.json").read_text())
    stock["plans_name"] = "nnUNetPlansOddPatch"
    stock["configurations"]["2d"]["patch_size"] = [120, 88]  # same preprocessed data, ragged patch
    (workspace["preprocessed"] / "nnUNetPlansOddPatch.json").write_text(json.dumps(stock))
    trainer, plans = "nnUNetTrainerVMUNet_Tiny_1ep2it", "nnUNetPlansOddPatch"
    output = train(workspace, "2d", trainer, plans) + predict(workspace, "2d", trainer, plans, tmp_path / "pred")
    assert_label_maps_like_inputs(workspace, read_predictions(tmp_path / "pred"))
    ours = [line for line in output.splitlines()
            if "warn" in line.lower() and (str(REPO / "nnunetv2_mamba") in line or "pad" in line.lower())]
    assert ours == []


def test_trainer_shim_finds_every_trainer_from_a_fresh_python(tmp_path, nnunet_trainer_search):
    from nnunetv2_mamba.training.ext_trainer_folder import trainers_folder
    from nnunetv2_mamba.training.trainers import __all__ as names

    script = ("import sys; from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f; "
              "print(*[f(n).__module__ for n in sys.argv[1:]])")
    for folder in (REPO / "trainers", trainers_folder()):
        env = {**os.environ, "nnUNet_extTrainer": f"{tmp_path}{os.pathsep}{folder}"}
        output = nnunet_trainer_search(script, env, *names).stdout
        assert output.splitlines()[-1].split() == ["nnunetv2_mamba.training.trainers"] * len(names)


def test_any_trainer_composes_with_a_budget_in_nnunets_own_search_from_a_fresh_python(nnunet_trainer_search):
    """nnU-Net's CNN, nnU-Net's own variants, ours and our recipes, each with a budget that no class was written
    for; the synthesised classes carry our safeguards, pickle by name, and bad budget names get one clear error."""
    script = """
import pickle, sys
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find
from nnunetv2_mamba.training.base import CompileOnRequest
from nnunetv2_mamba.training.checkpoints import SafeCheckpoints
from nnunetv2_mamba.training.nonfinite import NonFiniteLossGuard
for name, base in [('nnUNetTrainer_1ep2it', 'nnUNetTrainer'), ('nnUNetTrainerNoMirroring_3ep10it',
                   'nnUNetTrainerNoMirroring'), ('nnUNetTrainerVMUNet_Tiny_1ep2it', 'nnUNetTrainerVMUNet_Tiny'),
                   ('nnUNetTrainerVMUNet_PaperRecipe_8ep25it', 'nnUNetTrainerVMUNet_PaperRecipe')]:
    cls = find(name)
    assert cls.__name__ == name and cls.__mro__[1:].index(find(base)) >= 0, cls.__mro__
    assert all(issubclass(cls, m) for m in (NonFiniteLossGuard, SafeCheckpoints, CompileOnRequest))
    assert pickle.loads(pickle.dumps(cls)) is cls
    print('BUDGET', name, cls.budget.epochs, cls.budget.iterations_per_epoch, cls.budget.val_iterations_per_epoch)
for bad in ('nnUNetTrainer_1ep2it_3ep4it', 'nnUNetTrainerNotThere_1ep2it'):
    try:
        find(bad)
    except ValueError as error:
        print('ERROR', error)
"""
    output = nnunet_trainer_search(script, {**os.environ, "nnUNet_extTrainer": str(REPO / "trainers")}).stdout
    assert [line for line in output.splitlines() if line.startswith("BUDGET")] == [
        "BUDGET nnUNetTrainer_1ep2it 1 2 1", "BUDGET nnUNetTrainerNoMirroring_3ep10it 3 10 2",
        "BUDGET nnUNetTrainerVMUNet_Tiny_1ep2it 1 2 1", "BUDGET nnUNetTrainerVMUNet_PaperRecipe_8ep25it 8 25 5"]
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert errors[0] == ("ERROR nnUNetTrainer_1ep2it_3ep4it puts a budget on nnUNetTrainer_1ep2it, which has one "
                         "already; name one budget, e.g. nnUNetTrainer_3ep4it.")
    assert errors[1].startswith("ERROR nnUNetTrainerNotThere_1ep2it is trainer nnUNetTrainerNotThere with a "
                                "budget, but nnUNetTrainerNotThere was not found")


def test_a_broken_install_is_reported_without_stopping_nnunets_search_of_other_folders(tmp_path,
                                                                                      nnunet_trainer_search):
    (tmp_path / "my_trainers.py").write_text(
        "from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer\n"
        "class nnUNetTrainerMine(nnUNetTrainer):\n    pass\n")
    script = ("import sys; sys.modules['nnunetv2_mamba.training.trainers'] = None  # importing it now fails\n"
              "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f\n"
              "print(f('nnUNetTrainerMine').__name__)")
    env = {**os.environ, "nnUNet_extTrainer": f"{REPO / 'trainers'}{os.pathsep}{tmp_path}"}
    done = nnunet_trainer_search(script, env)
    assert "nnunetv2_mamba: its trainers are unavailable because importing them failed" in done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "nnUNetTrainerMine"

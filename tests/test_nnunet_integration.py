"""nnU-Net integration, end to end through the stock nnUNetv2_* commands run as subprocesses on CPU.

One phantom dataset is planned and preprocessed once per module (stock planner and ours); each test then trains a
tiny trainer for a few iterations. Budget: a few minutes on 2 cores.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.synthetic import write_phantom_dataset
from nnunetv2_mamba.training.checkpoints import read_training_checkpoint

REPO = Path(__file__).resolve().parent.parent
DATASET = "Dataset900_CardiacPhantom"
IMAGE_SIZE = (128, 112)
LABELS = {0, 1, 2, 3}


def run(command: list[str], env: dict, **extra_env) -> str:
    """Run an nnU-Net command; its combined output, or a failure showing the output's tail."""
    result = subprocess.run(command, env={**env, **extra_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    """Raw phantom, stock nnUNetPlans and our nnUNetMambaUNetPlans/nnUNetVMUNetPlans, all preprocessed (2d)."""
    root = tmp_path_factory.mktemp("nnunet")
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
           "nnUNet_results": str(root / "results"), "nnUNet_extTrainer": str(REPO / "trainers"),
           "nnUNet_def_n_proc": "1", "OMP_NUM_THREADS": "1"}
    env.pop("nnUNet_n_proc_DA", None)  # the planner calls torch.set_num_threads(nnUNet_n_proc_DA): 0 crashes it
    write_phantom_dataset(root / "raw", dataset_id=900, num_cases=10, image_size=IMAGE_SIZE, seed=0)
    run(["nnUNetv2_plan_and_preprocess", "-d", "900", "-c", "2d", "-np", "2", "-npfp", "2"], env)
    run([sys.executable, "-m", "nnunetv2_mamba", "plan_and_preprocess", "-d", "900", "-np", "2"], env)
    images = root / "input"
    images.mkdir()
    for case in ("phantom_000", "phantom_001"):
        shutil.copy(root / "raw" / DATASET / "imagesTr" / f"{case}_0000.nii.gz", images)
    return {"root": root, "env": {**env, "nnUNet_n_proc_DA": "0"}, "input": images,
            "preprocessed": root / "preprocessed" / DATASET}


def train(ws: dict, trainer: str, plans: str, *flags: str, epochs: int = 1, results: Path | None = None) -> str:
    env = {**ws["env"], "nnUNet_mamba_budget_epochs": str(epochs), "nnUNet_mamba_budget_iterations_per_epoch": "2",
           "nnUNet_mamba_budget_val_iterations": "1"}
    if results is not None:
        env["nnUNet_results"] = str(results)
    return run(["nnUNetv2_train", "900", "2d", "0", "-tr", trainer, "-p", plans, "-device", "cpu", *flags], env)


def predict(ws: dict, trainer: str, plans: str, output: Path, results: Path | None = None) -> str:
    env = dict(ws["env"]) if results is None else {**ws["env"], "nnUNet_results": str(results)}
    return run(["nnUNetv2_predict", "-i", str(ws["input"]), "-o", str(output), "-d", "900", "-c", "2d",
                "-tr", trainer, "-p", plans, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1"], env)


def model_folder(ws: dict, trainer: str, plans: str) -> Path:
    return ws["root"] / "results" / DATASET / f"{trainer}__{plans}__2d"


def read_predictions(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted(folder.glob("*.nii.gz"))}


def assert_label_maps_like_inputs(ws: dict, predictions: dict[str, np.ndarray]) -> None:
    assert sorted(predictions) == ["phantom_000.nii.gz", "phantom_001.nii.gz"]
    for name, prediction in predictions.items():
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(ws["root"] / "raw" / DATASET / "labelsTr" / name)))
        assert prediction.shape == label.shape
        assert set(np.unique(prediction)) <= LABELS


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
    trainer, plans = "nnUNetTrainerMambaUNet_Tiny", "nnUNetMambaUNetPlans"
    fold = model_folder(workspace, trainer, plans) / "fold_0"
    log = train(workspace, trainer, plans, epochs=1)
    assert "nnUNet_mamba_budget_epochs=1" in log
    assert read_training_checkpoint(fold / "checkpoint_final.pth")["current_epoch"] == 1
    train(workspace, trainer, plans, "--c", epochs=2)
    checkpoint = read_training_checkpoint(fold / "checkpoint_final.pth")
    assert checkpoint["current_epoch"] == 2 and checkpoint["trainer_name"] == trainer
    assert len(checkpoint["logging"]["train_losses"]) == 2  # epoch 0 from the first run, epoch 1 after --c
    assert (fold.parent / "plans.json").is_file() and (fold / "validation" / "summary.json").is_file()

    predict(workspace, trainer, plans, tmp_path / "pred")
    predictions = read_predictions(tmp_path / "pred")
    assert_label_maps_like_inputs(workspace, predictions)
    run(["nnUNetv2_evaluate_folder", str(workspace["root"] / "raw" / DATASET / "labelsTr"), str(tmp_path / "pred"),
         "-djfile", str(fold.parent / "dataset.json"), "-pfile", str(fold.parent / "plans.json"), "-np", "1",
         "--chill"], workspace["env"])
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2", "3"}

    zip_file = tmp_path / "model.zip"
    run(["nnUNetv2_export_model_to_zip", "-d", "900", "-o", str(zip_file), "-c", "2d", "-tr", trainer, "-p", plans,
         "-f", "0"], workspace["env"])
    installed = tmp_path / "installed_results"
    run(["nnUNetv2_install_pretrained_model_from_zip", str(zip_file)], workspace["env"],
        nnUNet_results=str(installed))
    predict(workspace, trainer, plans, tmp_path / "pred_installed", results=installed)
    reinstalled = read_predictions(tmp_path / "pred_installed")
    assert all(np.array_equal(predictions[name], reinstalled[name]) for name in predictions)


def test_vm_unet_trains_and_predicts_with_a_stock_patch_not_divisible_by_32(workspace, tmp_path):
    stock = json.loads((workspace["preprocessed"] / "nnUNetPlans.json").read_text())
    stock["plans_name"] = "nnUNetPlansOddPatch"
    stock["configurations"]["2d"]["patch_size"] = [120, 88]  # same preprocessed data, ragged patch
    (workspace["preprocessed"] / "nnUNetPlansOddPatch.json").write_text(json.dumps(stock))
    trainer, plans = "nnUNetTrainerVMUNet_Tiny", "nnUNetPlansOddPatch"
    output = train(workspace, trainer, plans) + predict(workspace, trainer, plans, tmp_path / "pred")
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


def test_a_3d_configuration_gets_one_clear_error():
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager
    from nnunetv2_mamba.training.trainers import nnUNetTrainerMambaUNet

    configuration = ConfigurationManager({"patch_size": [64, 128, 128], "architecture": {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet", "arch_kwargs": {},
        "_kw_requires_import": []}})
    with pytest.raises(NotImplementedError, match="use -c 2d"):
        nnUNetTrainerMambaUNet.build_network_architecture(None, configuration, 1, 4, True)


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

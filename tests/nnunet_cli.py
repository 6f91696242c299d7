"""The stock nnUNetv2_* commands as the end-to-end tests run them (subprocesses on CPU), shared by the 2d and 3d
integration tests: a workspace per synthetic dataset, and the full cycle a user goes through with one trainer.

A workspace is a dict: ``root`` (nnUNet_raw/preprocessed/results live under it), ``env`` (for the commands),
``dataset_id``, ``dataset`` (its folder name), ``input`` (a folder of images to predict), ``cases`` (their names)
and ``labels`` (the label values).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunetv2_mamba.training.checkpoints import read_training_checkpoint

REPO = Path(__file__).resolve().parent.parent


def run(command: list[str], env: dict, **extra_env) -> str:
    """Run an nnU-Net command; its combined output, or a failure showing the output's tail."""
    result = subprocess.run(command, env={**env, **extra_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-4000:]}"
    return result.stdout


def planning_environment(root: Path) -> dict:
    """nnU-Net's folders under ``root``, our trainers on its search path, one thread and process each."""
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
           "nnUNet_results": str(root / "results"), "nnUNet_extTrainer": str(REPO / "trainers"),
           "nnUNet_def_n_proc": "1", "OMP_NUM_THREADS": "1"}
    env.pop("nnUNet_n_proc_DA", None)  # the planner calls torch.set_num_threads(nnUNet_n_proc_DA): 0 crashes it
    return env


def train(ws: dict, configuration: str, trainer: str, plans: str, *flags: str, epochs: int = 1,
          results: Path | None = None) -> str:
    env = {**ws["env"], "nnUNet_mamba_budget_epochs": str(epochs), "nnUNet_mamba_budget_iterations_per_epoch": "2",
           "nnUNet_mamba_budget_val_iterations": "1"}
    if results is not None:
        env["nnUNet_results"] = str(results)
    return run(["nnUNetv2_train", ws["dataset_id"], configuration, "0", "-tr", trainer, "-p", plans, "-device", "cpu",
                *flags], env)


def predict(ws: dict, configuration: str, trainer: str, plans: str, output: Path,
            results: Path | None = None) -> str:
    env = dict(ws["env"]) if results is None else {**ws["env"], "nnUNet_results": str(results)}
    return run(["nnUNetv2_predict", "-i", str(ws["input"]), "-o", str(output), "-d", ws["dataset_id"], "-c",
                configuration, "-tr", trainer, "-p", plans, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1"],
               env)


def model_folder(ws: dict, configuration: str, trainer: str, plans: str) -> Path:
    return ws["root"] / "results" / ws["dataset"] / f"{trainer}__{plans}__{configuration}"


def read_predictions(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted(folder.glob("*.nii.gz"))}


def assert_label_maps_like_inputs(ws: dict, predictions: dict[str, np.ndarray]) -> None:
    assert sorted(predictions) == [f"{case}.nii.gz" for case in ws["cases"]]
    for name, prediction in predictions.items():
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(ws["root"] / "raw" / ws["dataset"] / "labelsTr" / name)))
        assert prediction.shape == label.shape
        assert set(np.unique(prediction)) <= ws["labels"]


def check_full_cycle(ws: dict, configuration: str, trainer: str, plans: str, tmp_path: Path) -> None:
    """Train 1 epoch, resume with --c to 2, predict, evaluate with nnUNetv2_evaluate_folder, export the model to a
    zip, install it elsewhere and predict the same label maps from there."""
    fold = model_folder(ws, configuration, trainer, plans) / "fold_0"
    log = train(ws, configuration, trainer, plans, epochs=1)
    assert "nnUNet_mamba_budget_epochs=1" in log
    assert read_training_checkpoint(fold / "checkpoint_final.pth")["current_epoch"] == 1
    train(ws, configuration, trainer, plans, "--c", epochs=2)
    checkpoint = read_training_checkpoint(fold / "checkpoint_final.pth")
    assert checkpoint["current_epoch"] == 2 and checkpoint["trainer_name"] == trainer
    assert len(checkpoint["logging"]["train_losses"]) == 2  # epoch 0 from the first run, epoch 1 after --c
    assert (fold.parent / "plans.json").is_file() and (fold / "validation" / "summary.json").is_file()

    predict(ws, configuration, trainer, plans, tmp_path / "pred")
    predictions = read_predictions(tmp_path / "pred")
    assert_label_maps_like_inputs(ws, predictions)
    run(["nnUNetv2_evaluate_folder", str(ws["root"] / "raw" / ws["dataset"] / "labelsTr"), str(tmp_path / "pred"),
         "-djfile", str(fold.parent / "dataset.json"), "-pfile", str(fold.parent / "plans.json"), "-np", "1",
         "--chill"], ws["env"])
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert set(summary["mean"]) == {str(label) for label in ws["labels"] - {0}}

    zip_file = tmp_path / "model.zip"
    run(["nnUNetv2_export_model_to_zip", "-d", ws["dataset_id"], "-o", str(zip_file), "-c", configuration,
         "-tr", trainer, "-p", plans, "-f", "0"], ws["env"])
    installed = tmp_path / "installed_results"
    run(["nnUNetv2_install_pretrained_model_from_zip", str(zip_file)], ws["env"], nnUNet_results=str(installed))
    predict(ws, configuration, trainer, plans, tmp_path / "pred_installed", results=installed)
    reinstalled = read_predictions(tmp_path / "pred_installed")
    assert all(np.array_equal(predictions[name], reinstalled[name]) for name in predictions)

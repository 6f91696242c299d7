"""The stock nnUNetv2_* commands as the end-to-end tests run them (subprocesses on CPU), shared by the 2d and 3d
integration tests: a workspace per synthetic dataset, and the steps a user goes through with one trainer.

A workspace is a dict: ``root`` (nnUNet_raw/preprocessed/results live under it), ``env`` (for the commands),
``dataset_id``, ``dataset`` (its folder name), ``input`` (a folder of images to predict), ``cases`` (their names),
``labels`` (the label values) and ``preprocessed`` (its preprocessed folder). Trainers carry their budget in their
name (``..._1ep2it``, nnunetv2_mamba.training.budget).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
import torch

from nnunetv2_mamba.comparison.workspace import NnUNetPaths, nnunet_environment
from helpers import DATASET, REPO, run


def planning_environment(root: Path, *trainer_folders: Path) -> dict:
    """nnU-Net's folders under ``root``, ``trainer_folders`` and then our trainers on its search path, one thread
    and process each (the package's nnunet_environment, as the benchmark builds it)."""
    return nnunet_environment(NnUNetPaths.under(root), planning=True, trainer_folders=trainer_folders,
                              base={**os.environ, "nnUNet_def_n_proc": "1", "OMP_NUM_THREADS": "1"})


def on_planned_phantom(phantom: dict, results: Path, *trainer_folders: Path) -> dict:
    """The environment for nnU-Net's commands on the session's planned phantom (conftest.planned_phantom) with
    results of their own in ``results``, ``trainer_folders`` and then our trainers on the trainer search path, and
    data loading in the training process (``nnUNet_n_proc_DA=0``)."""
    return {**phantom["env"], "nnUNet_results": str(results), "nnUNet_n_proc_DA": "0",
            "nnUNet_extTrainer": os.pathsep.join(map(str, [*trainer_folders, REPO / "trainers"]))}


def initialised_trainer(trainer_class, workspace: dict, plans_name: str, results: Path, monkeypatch):
    """An initialised ``trainer_class`` on CPU, in this process, on the workspace's preprocessed phantom with the
    plans ``plans_name`` (2d, fold 0), writing to ``results``."""
    monkeypatch.setenv("nnUNet_preprocessed", workspace["env"]["nnUNet_preprocessed"])
    monkeypatch.setenv("nnUNet_results", str(results))
    preprocessed = workspace["root"] / "preprocessed" / DATASET
    plans, dataset_json = (json.loads((preprocessed / name).read_text()) for name in (f"{plans_name}.json",
                                                                                      "dataset.json"))
    plans["continue_training"] = False  # nnU-Net 2.8.1's get_trainer_from_args adds this key
    trainer = trainer_class(plans, "2d", 0, dataset_json, torch.device("cpu"))
    trainer.initialize()
    return trainer


def plans_variant(plans_file: Path, name: str, edit: Callable[[dict], None] = lambda plans: None) -> Path:
    """A copy of ``plans_file`` beside it as the plans ``name``, changed by ``edit``: same preprocessed data (data
    identifier), nothing planned or preprocessed again. Returns the new plans file."""
    plans = json.loads(plans_file.read_text())
    plans["plans_name"] = name
    edit(plans)
    variant = plans_file.with_name(f"{name}.json")
    variant.write_text(json.dumps(plans, indent=4))
    return variant


def workspace_for(root: Path, env: dict, dataset_id: int, dataset: str, cases: tuple[str, ...],
                  labels: set[int]) -> dict:
    """The workspace of a planned and preprocessed dataset: ``cases``' images copied to ``input``, and data loading
    in the training process (``nnUNet_n_proc_DA=0``)."""
    images = root / "input"
    images.mkdir()
    for case in cases:
        shutil.copy(root / "raw" / dataset / "imagesTr" / f"{case}_0000.nii.gz", images)
    return {"root": root, "env": {**env, "nnUNet_n_proc_DA": "0"}, "input": images, "dataset_id": str(dataset_id),
            "dataset": dataset, "cases": cases, "labels": labels, "preprocessed": root / "preprocessed" / dataset}


def train(ws: dict, configuration: str, trainer: str, plans: str, *flags: str) -> str:
    return run(["nnUNetv2_train", ws["dataset_id"], configuration, "0", "-tr", trainer, "-p", plans, "-device", "cpu",
                *flags], ws["env"])


def predict(ws: dict, configuration: str, trainer: str, plans: str, output: Path,
            results: Path | None = None) -> str:
    env = dict(ws["env"]) if results is None else {**ws["env"], "nnUNet_results": str(results)}
    return run(["nnUNetv2_predict", "-i", str(ws["input"]), "-o", str(output), "-d", ws["dataset_id"], "-c",
                configuration, "-tr", trainer, "-p", plans, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1"],
               env)


def model_folder(ws: dict, configuration: str, trainer: str, plans: str) -> Path:
    return ws["root"] / "results" / ws["dataset"] / f"{trainer}__{plans}__{configuration}"


def read_predictions(folder: Path, ending: str = ".nii.gz") -> dict[str, np.ndarray]:
    """{file name: label map} of the predictions in ``folder`` with the file ending ``ending``."""
    return {p.name: sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted(folder.glob(f"*{ending}"))}


def assert_label_maps_like_inputs(ws: dict, predictions: dict[str, np.ndarray]) -> None:
    assert sorted(predictions) == [f"{case}.nii.gz" for case in ws["cases"]]
    for name, prediction in predictions.items():
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(ws["root"] / "raw" / ws["dataset"] / "labelsTr" / name)))
        assert prediction.shape == label.shape
        assert set(np.unique(prediction)) <= ws["labels"]


def assert_evaluates_every_label(ws: dict, model: Path, predictions: Path) -> None:
    """nnUNetv2_evaluate_folder on ``predictions`` against the raw labels scores every foreground label."""
    run(["nnUNetv2_evaluate_folder", str(ws["root"] / "raw" / ws["dataset"] / "labelsTr"), str(predictions),
         "-djfile", str(model / "dataset.json"), "-pfile", str(model / "plans.json"), "-np", "1", "--chill"],
        ws["env"])
    summary = json.loads((predictions / "summary.json").read_text())
    assert set(summary["mean"]) == {str(label) for label in ws["labels"] - {0}}


def assert_export_reinstall_predicts_the_same(ws: dict, configuration: str, trainer: str, plans: str,
                                              predictions: dict[str, np.ndarray], tmp_path: Path) -> None:
    """Export the model to a zip, install it in another results folder, and predict the same label maps there."""
    zip_file = tmp_path / "model.zip"
    run(["nnUNetv2_export_model_to_zip", "-d", ws["dataset_id"], "-o", str(zip_file), "-c", configuration,
         "-tr", trainer, "-p", plans, "-f", "0"], ws["env"])
    installed = tmp_path / "installed_results"
    run(["nnUNetv2_install_pretrained_model_from_zip", str(zip_file)], ws["env"], nnUNet_results=str(installed))
    predict(ws, configuration, trainer, plans, tmp_path / "pred_installed", results=installed)
    reinstalled = read_predictions(tmp_path / "pred_installed")
    assert all(np.array_equal(predictions[name], reinstalled[name]) for name in predictions)

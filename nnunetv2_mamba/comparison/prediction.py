"""Predict a test folder with one trained model (trainer, plans, configuration) through ``nnUNetv2_predict``: the
job that does it, and how long it took, read back from the files it wrote."""
from __future__ import annotations

from pathlib import Path

from nnunetv2_mamba.comparison.execution import Job
from nnunetv2_mamba.comparison.device_jobs import device_job
from nnunetv2_mamba.comparison.job_device import DEVICE
from nnunetv2_mamba.comparison.methods import Model

#: the first file nnUNetv2_predict writes into its output folder, after loading the model
STARTED = "predict_from_raw_data_args.json"


def test_cases(input_dir: Path, file_ending: str) -> list[str]:
    """Case ids of an imagesTs-style folder (``CASE_0000<file_ending>``); one clear error when there are none."""
    cases = sorted(p.name[: -len("_0000" + file_ending)] for p in input_dir.iterdir()
                   if p.name.endswith("_0000" + file_ending))
    if not cases:
        raise SystemExit(f"no '*_0000{file_ending}' images in {input_dir}; pass nnU-Net's imagesTs-style folder.")
    return cases


def is_predicted(output_dir: Path, cases: list[str], file_ending: str) -> bool:
    return output_dir.is_dir() and all((output_dir / f"{case}{file_ending}").is_file() for case in cases)


def prediction_job(key: str, dataset_id: int, model: Model, folds: list[int],
                   input_dir: Path, output_dir: Path, device: str, executor, env: dict, log_file: Path,
                   disable_tta: bool = False, probabilities: bool = False) -> Job:
    """``nnUNetv2_predict`` of ``input_dir`` into ``output_dir`` with the model's ``folds``, on the device the job
    gets where ``executor`` runs it (``device``: nnU-Net's -device); ``probabilities`` for ensembling."""
    return device_job(key, model.predict_command(dataset_id, folds, input_dir, output_dir, DEVICE, probabilities,
                                                 disable_tta), device, executor, env, log_file)


def prediction_timing(output_dir: Path, cases: list[str], file_ending: str) -> dict:
    """{"seconds", "cases", "seconds_per_case"} of a finished prediction: from nnUNetv2_predict's first file
    (written once the model is loaded) to its last prediction, so preprocessing, inference and export, on whichever
    machine ran it, without process start-up and model loading."""
    started = (output_dir / STARTED).stat().st_mtime
    finished = max((output_dir / f"{case}{file_ending}").stat().st_mtime for case in cases)
    seconds = max(finished - started, 0.0)
    return {"seconds": seconds, "cases": len(cases), "seconds_per_case": seconds / len(cases)}

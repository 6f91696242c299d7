"""Predict a test folder with one trained model (trainer, plans, configuration) through ``nnUNetv2_predict``, timed."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path


def predict_folder(dataset_id: int, trainer: str, plans: str, configuration: str, folds: list[int], input_dir: Path,
                   output_dir: Path, device: str, env: dict, log_file: Path, disable_tta: bool = False) -> dict:
    """Run nnUNetv2_predict (skipped when every case already has a prediction); returns
    {"seconds": wall seconds or None if skipped, "cases": number of cases, "seconds_per_case"}.

    The wall time covers the whole command (start-up and model loading included), divided by the cases.
    """
    from nnunetv2_mamba.comparison.environment import nnunet_command

    cases = sorted({p.name.rsplit("_", 1)[0] for p in input_dir.iterdir() if p.name.endswith(".nii.gz")})
    if not cases:
        raise SystemExit(f"no '*_0000.nii.gz' images in {input_dir}; pass nnU-Net's imagesTs-style folder.")
    done = output_dir.is_dir() and all((output_dir / f"{case}.nii.gz").is_file() for case in cases)
    if done:
        return {"seconds": None, "cases": len(cases), "seconds_per_case": None}
    command = [nnunet_command("nnUNetv2_predict"), "-i", str(input_dir), "-o", str(output_dir),
               "-d", str(dataset_id), "-c", configuration, "-tr", trainer, "-p", plans, "-f", *map(str, folds),
               "-device", device, "-npp", "1", "-nps", "1"] + (["--disable_tta"] if disable_tta else [])
    log_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log_file.open("a") as handle:
        result = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"nnUNetv2_predict failed for {trainer} (log: {log_file}):\n{tail}")
    return {"seconds": seconds, "cases": len(cases), "seconds_per_case": seconds / len(cases)}

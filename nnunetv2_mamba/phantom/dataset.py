"""Write phantom slices as an nnU-Net raw dataset (``DatasetXXX_CardiacPhantom``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunetv2_mamba.phantom.generator import LABELS, PhantomSlice, make_phantom_slice

DATASET_NAME = "CardiacPhantom"
FILE_ENDING = ".nii.gz"


def _write_nifti(array: np.ndarray, spacing_rc: tuple[float, float], thickness: float, path: Path) -> None:
    """Store (H, W) ``array`` as a one-slice 3-D NIfTI: nnU-Net reads it back as (1, 1, H, W) with spacing
    (thickness, row, column), like one ACDC short-axis slice."""
    image = sitk.GetImageFromArray(array[None])
    image.SetSpacing((spacing_rc[1], spacing_rc[0], thickness))
    sitk.WriteImage(image, str(path), useCompression=True)


def _write_case(case: PhantomSlice, name: str, images_dir: Path, labels_dir: Path) -> None:
    _write_nifti(case.image, case.spacing, case.thickness, images_dir / f"{name}_0000{FILE_ENDING}")
    _write_nifti(case.labels, case.spacing, case.thickness, labels_dir / f"{name}{FILE_ENDING}")


def write_phantom_dataset(nnunet_raw: str | Path, dataset_id: int = 900, num_cases: int = 20,
                          image_size: tuple[int, int] = (128, 128), seed: int = 0,
                          num_test_cases: int = 0) -> Path:
    """Write ``Dataset{dataset_id:03d}_CardiacPhantom`` under ``nnunet_raw`` and return its folder.

    imagesTr/labelsTr hold ``num_cases`` cases ``phantom_000``...; imagesTs/labelsTs hold ``num_test_cases`` more
    (``phantom_test_000``...). Labels: background 0, RV 1, MYO 2, LV 3. Deterministic for a given ``seed``
    (case i always comes from the same random stream, whatever ``num_cases``).
    """
    if num_cases < 2:
        raise ValueError(f"num_cases={num_cases}: nnU-Net needs at least 2 training cases; ask for more.")
    if not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset_id={dataset_id} must be between 1 and 999 (nnU-Net uses three digits).")
    folder = Path(nnunet_raw) / f"Dataset{dataset_id:03d}_{DATASET_NAME}"
    splits = [("Tr", "phantom_", num_cases, 0), ("Ts", "phantom_test_", num_test_cases, 1)]
    for suffix, prefix, count, stream in splits:
        if count == 0:
            continue
        images_dir, labels_dir = folder / f"images{suffix}", folder / f"labels{suffix}"
        images_dir.mkdir(parents=True, exist_ok=True)
        labels_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            rng = np.random.default_rng([seed, stream, index])
            _write_case(make_phantom_slice(rng, tuple(image_size)), f"{prefix}{index:03d}", images_dir, labels_dir)
    dataset_json = {
        "channel_names": {"0": "MRI"},
        "labels": dict(LABELS),
        "numTraining": num_cases,
        "file_ending": FILE_ENDING,
        "name": f"Dataset{dataset_id:03d}_{DATASET_NAME}",
        "description": "Synthetic short-axis cardiac MRI slices with ACDC-like labels (nnunetv2_mamba phantom).",
        "phantom": {"seed": seed, "image_size": list(image_size), "num_test_cases": num_test_cases},
    }
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return folder

"""Write synthetic slices as an nnU-Net raw dataset: imagesTr/labelsTr (and imagesTs/labelsTs), dataset.json."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunetv2_mamba.synthetic.kinds import KINDS
from nnunetv2_mamba.synthetic.slices import DatasetKind, SyntheticSlice

FILE_ENDINGS = (".nii.gz", ".png")  # a one-slice NIfTI volume, or nnU-Net's 2-D natural-image format


def _write_nifti(array: np.ndarray, spacing_rc: tuple[float, float], thickness: float, path: Path) -> None:
    """Store (H, W) ``array`` as a one-slice 3-D NIfTI: nnU-Net reads it back as (1, 1, H, W) with spacing
    (thickness, row, column), like one slice of a short-axis or axial stack."""
    image = sitk.GetImageFromArray(array[None])
    image.SetSpacing((spacing_rc[1], spacing_rc[0], thickness))
    sitk.WriteImage(image, str(path), useCompression=True)


def _write_png(array: np.ndarray, path: Path, is_label: bool) -> None:
    """Store (H, W) ``array`` as an 8-bit grey PNG (nnU-Net's NaturalImage2DIO: spacing 1, no thickness); an image
    is scaled to 0-255, labels are kept as they are."""
    from PIL import Image

    if not is_label:
        low, high = float(array.min()), float(array.max())
        array = (array - low) / (high - low or 1.0) * 255
    Image.fromarray(np.round(array).astype(np.uint8)).save(path)


def _write_case(case: SyntheticSlice, name: str, images_dir: Path, labels_dir: Path, file_ending: str) -> None:
    def write(array, path, is_label):
        if file_ending == ".png":
            _write_png(array, path, is_label)
        else:
            _write_nifti(array, case.spacing, case.thickness, path)

    for channel, image in enumerate(case.images):
        write(image, images_dir / f"{name}_{channel:04d}{file_ending}", False)
    write(case.labels, labels_dir / f"{name}{file_ending}", True)


def resolve_kind(kind: str | DatasetKind) -> DatasetKind:
    """The :class:`DatasetKind` named ``kind`` (one of :data:`KINDS`), or ``kind`` itself."""
    if isinstance(kind, DatasetKind):
        return kind
    if kind not in KINDS:
        raise ValueError(f"Unknown synthetic data set {kind!r}; choose one of {', '.join(KINDS)}.")
    return KINDS[kind]


def write_dataset(kind: str | DatasetKind, nnunet_raw: str | Path, dataset_id: int | None = None,
                  num_cases: int = 20, image_size: tuple[int, int] = (128, 128), seed: int = 0,
                  num_test_cases: int = 0, file_ending: str = ".nii.gz") -> Path:
    """Write ``Dataset{dataset_id:03d}_{kind.dataset_name}`` under ``nnunet_raw`` and return its folder.

    imagesTr/labelsTr hold ``num_cases`` cases ``{case_prefix}000``...; imagesTs/labelsTs hold ``num_test_cases``
    more (``{case_prefix}test_000``...), one ``_XXXX`` image file per channel. ``dataset_id`` defaults to the
    kind's own. ``file_ending``: one of ``FILE_ENDINGS`` (``.png``: 8-bit images, spacing 1). Deterministic for a given ``seed`` (case i always comes from the same random stream, whatever
    ``num_cases``).
    """
    kind = resolve_kind(kind)
    if file_ending not in FILE_ENDINGS:
        raise ValueError(f"file_ending={file_ending!r}: choose one of {', '.join(FILE_ENDINGS)}.")
    dataset_id = kind.default_id if dataset_id is None else dataset_id
    if num_cases < 2:
        raise ValueError(f"num_cases={num_cases}: nnU-Net needs at least 2 training cases; ask for more.")
    if not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset_id={dataset_id} must be between 1 and 999 (nnU-Net uses three digits).")
    if min(image_size) < 32:
        raise ValueError(f"image_size={tuple(image_size)}: ask for at least 32 x 32 pixels.")
    folder = Path(nnunet_raw) / f"Dataset{dataset_id:03d}_{kind.dataset_name}"
    splits = [("Tr", kind.case_prefix, num_cases, 0), ("Ts", f"{kind.case_prefix}test_", num_test_cases, 1)]
    for suffix, prefix, count, stream in splits:
        if count == 0:
            continue
        images_dir, labels_dir = folder / f"images{suffix}", folder / f"labels{suffix}"
        images_dir.mkdir(parents=True, exist_ok=True)
        labels_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            rng = np.random.default_rng([seed, stream, index])
            _write_case(kind.make_slice(rng, tuple(image_size)), f"{prefix}{index:03d}", images_dir, labels_dir,
                        file_ending)
    dataset_json = {
        "channel_names": dict(kind.channel_names),
        "labels": dict(kind.labels),
        "numTraining": num_cases,
        "file_ending": file_ending,
        "name": f"Dataset{dataset_id:03d}_{kind.dataset_name}",
        "description": kind.description,
        "phantom": {"seed": seed, "image_size": list(image_size), "num_test_cases": num_test_cases},
    }
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return folder


def write_phantom_dataset(nnunet_raw: str | Path, dataset_id: int = 900, num_cases: int = 20,
                          image_size: tuple[int, int] = (128, 128), seed: int = 0,
                          num_test_cases: int = 0, file_ending: str = ".nii.gz") -> Path:
    """The cardiac phantom (``Dataset{dataset_id:03d}_CardiacPhantom``, cases ``phantom_000``...; background 0,
    RV 1, MYO 2, LV 3): :func:`write_dataset` for ``"cardiac"``."""
    return write_dataset("cardiac", nnunet_raw, dataset_id, num_cases, image_size, seed, num_test_cases,
                         file_ending)

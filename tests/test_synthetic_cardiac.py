"""The synthetic cardiac phantom: the same data as before the generators moved into nnunetv2_mamba.synthetic, files
nnU-Net reads back correctly, determinism, nnU-Net's integrity check, and the make-dataset/make-phantom commands."""
import hashlib
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

from nnunetv2_mamba.cli import main
from nnunetv2_mamba.synthetic import write_phantom_dataset
from nnunetv2_mamba.synthetic.cardiac import make_slice
from helpers import run

#: content hash (below) of write_phantom_dataset(raw, 900, num_cases=3, image_size=(64, 80), seed=7,
#: num_test_cases=1) computed with the generator as it was in nnunetv2_mamba/phantom before it moved
CARDIAC_SEED7_CONTENT_SHA256 = "c362f4afc614c7555c97832d4eacb7aeba141ef47a67d06c8ed1076878ff06d2"


def dataset_content_hash(folder: Path) -> str:
    """SHA-256 over every file's relative path and content: voxel bytes, dtype, shape and geometry for NIfTI (so
    that a different zlib cannot change it), raw bytes otherwise."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        if path.name.endswith(".nii.gz"):
            image = sitk.ReadImage(str(path))
            array = sitk.GetArrayFromImage(image)
            digest.update(f"{array.dtype.str}{array.shape}{image.GetSpacing()}{image.GetOrigin()}"
                          f"{image.GetDirection()}".encode())
            digest.update(array.tobytes())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_the_cardiac_dataset_is_unchanged_by_the_move_into_synthetic(tmp_path):
    folder = write_phantom_dataset(tmp_path, 900, num_cases=3, image_size=(64, 80), seed=7, num_test_cases=1)
    assert dataset_content_hash(folder) == CARDIAC_SEED7_CONTENT_SHA256


def test_slices_are_deterministic_and_vary_with_the_seed():
    a = make_slice(np.random.default_rng(3), (96, 112))
    b = make_slice(np.random.default_rng(3), (96, 112))
    c = make_slice(np.random.default_rng(4), (96, 112))
    assert a.images.shape == (1, 96, 112) and a.labels.shape == (96, 112)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)
    # blood is brighter than myocardium, as in cine MRI
    assert a.images[0][a.labels == 3].mean() > a.images[0][a.labels == 2].mean()


def test_dataset_reads_back_with_nnunet(tmp_path):
    raw = tmp_path / "raw"
    folder = write_phantom_dataset(raw, dataset_id=901, num_cases=4, image_size=(64, 80), seed=1, num_test_cases=1)
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
    assert dataset["numTraining"] == 4 and dataset["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == ["phantom_test_000_0000.nii.gz"]
    assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == ["phantom_test_000.nii.gz"]

    io = SimpleITKIO()
    for case in ("phantom_000", "phantom_003"):
        image, image_props = io.read_images([str(folder / "imagesTr" / f"{case}_0000.nii.gz")])
        seg, seg_props = io.read_seg(str(folder / "labelsTr" / f"{case}.nii.gz"))
        assert image.shape == seg.shape == (1, 1, 64, 80)
        assert set(np.unique(seg)) == {0, 1, 2, 3}
        thickness, row, column = image_props["spacing"]
        assert 5.0 <= thickness <= 10.0 and 1.2 < row < 1.9 and 1.2 < column < 1.9
        np.testing.assert_allclose(seg_props["spacing"], image_props["spacing"], rtol=1e-6)


def test_nnunet_checks_the_dataset_and_plans_the_image_size_as_patch(nnunet_workspace):
    """nnU-Net's integrity check passes and its planner reads the axes in order: the 2d patch is the 64x80 image
    (planned only, not preprocessed)."""
    raw, env = nnunet_workspace["root"] / "raw", nnunet_workspace["env"]
    write_phantom_dataset(raw, dataset_id=901, num_cases=4, image_size=(64, 80), seed=1, num_test_cases=1)
    run(["nnUNetv2_plan_and_preprocess", "-d", "901", "--verify_dataset_integrity", "-c", "2d", "-npfp", "2",
         "--no_pp"], env)
    plans = json.loads((nnunet_workspace["root"] / "preprocessed" / "Dataset901_CardiacPhantom" /
                        "nnUNetPlans.json").read_text())
    assert plans["configurations"]["2d"]["patch_size"] == [64, 80]


def test_make_phantom_is_make_dataset_cardiac(tmp_path, capsys):
    def command(*args):
        assert main(list(args)) == 0
        return Path(capsys.readouterr().out.strip())

    shorthand = command("make-phantom", str(tmp_path / "a"), "--cases", "2", "--size", "48", "40", "--seed", "5")
    general = command("make-dataset", "cardiac", str(tmp_path / "b"), "--cases", "2", "--size", "48", "40",
                      "--seed", "5")
    assert shorthand.name == general.name == "Dataset900_CardiacPhantom"
    assert dataset_content_hash(shorthand) == dataset_content_hash(general)

"""The synthetic cardiac phantom: files nnU-Net reads back correctly, determinism, and nnU-Net's integrity check."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

from nnunetv2_mamba.phantom import make_phantom_slice, write_phantom_dataset


def test_slices_are_deterministic_and_vary_with_the_seed():
    a = make_phantom_slice(np.random.default_rng(3), (96, 112))
    b = make_phantom_slice(np.random.default_rng(3), (96, 112))
    c = make_phantom_slice(np.random.default_rng(4), (96, 112))
    assert a.image.shape == a.labels.shape == (96, 112)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)
    # blood is brighter than myocardium, as in cine MRI
    assert a.image[a.labels == 3].mean() > a.image[a.labels == 2].mean()


def test_dataset_reads_back_with_nnunet_and_passes_its_integrity_check(tmp_path):
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
        # NIfTI headers keep the spacing in float32: both files round the same value alike; rtol 1e-6 (17 float32
        # ulps) would also pass a writer that rounded once more
        np.testing.assert_allclose(seg_props["spacing"], image_props["spacing"], rtol=1e-6)

    env = dict(os.environ, nnUNet_raw=str(raw), nnUNet_preprocessed=str(tmp_path / "pre"),
               nnUNet_results=str(tmp_path / "results"))
    planner = str(Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess")  # works in an unactivated venv
    subprocess.run([planner, "-d", "901", "--verify_dataset_integrity", "-c", "2d", "-np", "2", "-npfp", "2"],
                   env=env, check=True, capture_output=True)
    plans = json.loads((tmp_path / "pre" / "Dataset901_CardiacPhantom" / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["2d"]["patch_size"] == [64, 80]

"""The benchmark on nnU-Net's 2-D natural-image format: a .png dataset (nnU-Net's NaturalImage2DIO) through two
methods, two folds, nnU-Net's ensembling and choice and a test folder, to the full report with its overlays. The
ending is read from the dataset, never assumed."""
import json
import os

from nnunetv2_mamba.comparison.workspace import NnUNetPaths, nnunet_environment
from nnunetv2_mamba.synthetic import write_phantom_dataset
from helpers import nnunetv2_mamba, run

TRAINERS = ["nnUNetTrainer", "nnUNetTrainerMambaUNet_Tiny"]


def test_a_png_dataset_is_benchmarked_ensembled_predicted_and_reported_with_overlays(nnunet_workspace):
    root = nnunet_workspace["root"]
    paths = NnUNetPaths.under(root)
    env = nnunet_environment(paths, planning=True, base={**os.environ, "nnUNet_def_n_proc": "1",
                                                         "OMP_NUM_THREADS": "1"})
    raw = write_phantom_dataset(paths.raw, dataset_id=901, num_cases=6, image_size=(64, 64), num_test_cases=2,
                                file_ending=".png")
    assert sorted(p.name for p in (raw / "imagesTs").iterdir()) == ["phantom_test_000_0000.png",
                                                                     "phantom_test_001_0000.png"]
    run(["nnUNetv2_plan_and_preprocess", "-d", "901", "-c", "2d", "-np", "1", "-npfp", "1"], env)
    report = root / "report"
    result = nnunetv2_mamba(
        env, "benchmark", "-d", "901", "--trainers", *TRAINERS, "--folds", "0", "1", "--ensembles", "--epochs", "1",
        "--iterations-per-epoch", "1", "-device", "cpu", "--test-folder", str(raw / "imagesTs"), "--test-labels",
        str(raw / "labelsTs"), "-o", str(report))
    assert result.returncode == 0, result.stdout[-4000:]

    saved = json.loads((report / "results.json").read_text())
    validation = sorted(saved["fold_of_case"])  # the cases of folds 0 and 1
    assert len(validation) >= 2 and sorted(saved["splits"]["validation"]["nnUNetTrainer"]["cases"]) == validation
    best = next(name for name in saved["splits"]["test"] if name.startswith("best: "))
    assert sorted(saved["splits"]["test"]) == sorted([*TRAINERS, best])
    assert all(sorted(s["cases"]) == ["phantom_test_000", "phantom_test_001"] for s in saved["splits"]["test"].values())
    assert saved["selection"]["best"] and any(k.startswith("ensemble: ") for k in saved["selection"]["candidates"])
    text = (report / "report.md").read_text()
    for split in ("validation", "test"):
        assert f"(overlays_{split}.png)" in text and (report / f"overlays_{split}.png").stat().st_size > 10_000
    assert "Not drawn" not in text
    assert sorted(p.name for p in (report / "test_predictions" / "nnUNetTrainer").glob("*.png")) == [
        "phantom_test_000.png", "phantom_test_001.png"]

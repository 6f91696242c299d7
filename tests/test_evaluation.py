"""Table-1 metrics: hand-computed cases, empty-mask conventions, and agreement with nnU-Net's own Dice/IoU."""
import hashlib
import json
import math
import shutil

import numpy as np
import pytest
from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder_simple
from scipy import ndimage

from nnunetv2_mamba.cli import main
from nnunetv2_mamba.evaluation import case_metrics, evaluate_folder, load_results, overlap_metrics, surface_metrics
from nnunetv2_mamba.synthetic import write_phantom_dataset


def shifted_squares():
    """4x4 square at rows/cols 2..5 and the same square shifted right by 2 columns."""
    reference = np.zeros((10, 10), bool)
    reference[2:6, 2:6] = True
    return reference, np.roll(reference, 2, axis=1)


def test_shifted_square_with_anisotropic_spacing():
    # Surface (4-connected border) of the 4x4 square: 12 pixels. Spacing 1 mm per row, 3 mm per column.
    # Distances from the shifted square's border to the reference border, by hand:
    #   top and bottom rows: 6, 3, 0, 0 each (columns 2..3 apart); left column (2 pixels): 6, 6;
    #   right column (2 pixels): 1, 1 (one row to the reference's top/bottom row).
    # -> 12 distances summing to 32: ASD = 32/12. By symmetry the other direction has the same 12 values, so
    # the pooled 24 sorted are 0 x8, 1 x4, 3 x4, 6 x8 and their 95th percentile is 6.
    reference, prediction = shifted_squares()
    distances = surface_metrics(reference, prediction, (1.0, 3.0))
    # float64 arithmetic on a few exact values: pytest.approx's relative 1e-6 is ~10^10 float64 ulps, any order
    assert distances["HD95"] == pytest.approx(6.0)
    assert distances["ASD"] == pytest.approx(32 / 12)
    # the same slice stored as a one-slice volume: the singleton axis and its spacing are ignored
    volume = surface_metrics(reference[None], prediction[None], (8.0, 1.0, 3.0))
    assert volume == pytest.approx(distances)


def test_overlap_of_shifted_square():
    reference, prediction = shifted_squares()  # TP 8, FP 8, FN 8, TN 76
    scores = overlap_metrics(reference, prediction)
    assert scores == pytest.approx({"Dice": 16 / 32, "IoU": 8 / 24, "Accuracy": 84 / 100, "Precision": 8 / 16,
                                    "Sensitivity": 8 / 16, "Specificity": 76 / 84})


def test_empty_mask_conventions():
    reference, prediction = shifted_squares()
    empty = np.zeros_like(reference)
    both_empty = {**overlap_metrics(empty, empty), **surface_metrics(empty, empty, (1.0, 1.0))}
    assert both_empty == {"Dice": 1.0, "IoU": 1.0, "Accuracy": 1.0, "Precision": 1.0, "Sensitivity": 1.0,
                          "Specificity": 1.0, "HD95": 0.0, "ASD": 0.0}
    missed = {**overlap_metrics(reference, empty), **surface_metrics(reference, empty, (1.0, 1.0))}
    assert missed["Dice"] == missed["IoU"] == missed["Precision"] == missed["Sensitivity"] == 0.0
    assert missed["Specificity"] == 1.0 and math.isnan(missed["HD95"]) and math.isnan(missed["ASD"])
    false_alarm = {**overlap_metrics(empty, prediction), **surface_metrics(empty, prediction, (1.0, 1.0))}
    assert false_alarm["Dice"] == false_alarm["Precision"] == false_alarm["Sensitivity"] == 0.0
    assert math.isnan(false_alarm["HD95"])


def test_case_metrics_per_label():
    reference = np.zeros((1, 12, 12), np.uint8)
    reference[0, 2:6, 2:6] = 1
    reference[0, 8:10, 8:10] = 2
    prediction = reference.copy()
    prediction[0, 8:10, 8:10] = 0  # class 2 missed
    scores = case_metrics(reference, prediction, {"A": 1, "B": 2}, (5.0, 1.5, 1.5))
    assert scores["A"]["Dice"] == 1.0 and scores["A"]["HD95"] == 0.0
    assert scores["B"]["Dice"] == 0.0 and math.isnan(scores["B"]["ASD"])
    with pytest.raises(ValueError, match="spacing"):
        case_metrics(reference, prediction, {"A": 1}, (1.5, 1.5))


def test_folder_agrees_with_nnunet_and_cli_writes_json_and_csv(tmp_path):
    import SimpleITK as sitk

    folder = write_phantom_dataset(tmp_path / "raw", dataset_id=902, num_cases=3, image_size=(48, 48), seed=2)
    predictions = tmp_path / "pred"
    predictions.mkdir()
    for index, path in enumerate(sorted((folder / "labelsTr").iterdir())):
        image = sitk.ReadImage(str(path))
        labels = sitk.GetArrayFromImage(image)
        if index == 0:
            labels = np.where(labels == 2, 0, labels)  # MYO missed: one-empty convention in a real folder
        elif index == 1:
            labels = np.roll(labels, 2, axis=2)
        else:
            labels = np.where(ndimage.binary_dilation(labels == 3), 3, labels).astype(np.uint8)
        out = sitk.GetImageFromArray(labels.astype(np.uint8))
        out.CopyInformation(image)
        sitk.WriteImage(out, str(predictions / path.name))
    dataset_json = json.loads((folder / "dataset.json").read_text())
    ours = evaluate_folder(folder / "labelsTr", predictions, dataset_json, progress=False)
    compute_metrics_on_folder_simple(str(folder / "labelsTr"), str(predictions), [1, 2, 3], num_processes=1)
    nnunet = json.loads((predictions / "summary.json").read_text())
    assert len(ours["cases"]) == 3
    for entry in nnunet["metric_per_case"]:
        case = entry["prediction_file"].rsplit("/", 1)[-1][: -len(".nii.gz")]
        for name, value in ours["labels"].items():
            for metric in ("Dice", "IoU"):
                # both float64 ratios of the same voxel counts, maybe by other formulas: a few ulps apart
                assert ours["cases"][case][name][metric] == pytest.approx(entry["metrics"][str(value)][metric])
    assert ours["aggregate"]["MYO"]["HD95"]["n_undefined"] == 1
    assert ours["aggregate"]["MYO"]["HD95"]["n"] == 2

    summary_hash = hashlib.sha256((predictions / "summary.json").read_bytes()).hexdigest()
    out = tmp_path / "out" / "scores.json"
    assert main(["evaluate", str(folder / "labelsTr"), str(predictions), "-djfile", str(folder / "dataset.json"),
                 "-o", str(out)]) == 0
    written = load_results(out)
    assert written["aggregate"]["LV"]["Dice"]["mean"] == pytest.approx(ours["aggregate"]["LV"]["Dice"]["mean"])
    assert math.isnan(written["cases"]["phantom_000"]["MYO"]["HD95"])
    rows = (tmp_path / "out" / "scores.csv").read_text().splitlines()
    assert rows[0] == "case,class,Dice,IoU,Accuracy,Precision,Sensitivity,Specificity,HD95,ASD"
    assert len(rows) == 1 + 3 * 4
    assert hashlib.sha256((predictions / "summary.json").read_bytes()).hexdigest() == summary_hash
    with pytest.raises(SystemExit, match="nnU-Net's own file name"):
        main(["evaluate", str(folder / "labelsTr"), str(predictions), "-djfile", str(folder / "dataset.json"),
              "-o", str(predictions / "summary.json")])


def test_cli_pairs_cases_by_the_prediction_folder(tmp_path, capsys):
    """nnU-Net's layout: the whole gt_segmentations folder as REF, one fold's validation folder as PRED."""
    folder = write_phantom_dataset(tmp_path / "raw", dataset_id=903, num_cases=5, image_size=(32, 32), seed=1)
    validation = tmp_path / "validation"
    validation.mkdir()
    for case in ("phantom_001", "phantom_003"):
        shutil.copy(folder / "labelsTr" / f"{case}.nii.gz", validation)
    (validation / "summary.json").write_text('{"nnU-Net": "its own file"}')
    before = {p.name: p.read_bytes() for p in validation.iterdir()}
    dataset_json = str(folder / "dataset.json")

    assert main(["evaluate", str(folder / "labelsTr"), str(validation), "-djfile", dataset_json]) == 0
    printed = capsys.readouterr().out
    assert "scored 2 predictions" in printed and "3 references" in printed and "not scored" in printed
    written = validation / "metrics_table1.json"
    assert f"wrote {written} and {written.with_suffix('.csv')}" in printed
    results = load_results(written)
    assert sorted(results["cases"]) == ["phantom_001", "phantom_003"]
    assert results["aggregate"]["mean"]["Dice"]["mean"] == 1.0
    assert {p.name: p.read_bytes() for p in validation.iterdir() if p.name in before} == before
    assert sorted(p.name for p in validation.iterdir()) == sorted([*before, written.name, "metrics_table1.csv"])

    for case in ("extra_a", "extra_b"):
        shutil.copy(folder / "labelsTr" / "phantom_000.nii.gz", validation / f"{case}.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"2 of 4 predictions .* have no reference .*: extra_a.nii.gz, "
                                                r"extra_b.nii.gz\. Pass the folder"):
        main(["evaluate", str(folder / "labelsTr"), str(validation), "-djfile", dataset_json])

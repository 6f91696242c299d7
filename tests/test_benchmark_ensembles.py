"""Fair benchmarks end to end: a ResEnc baseline on its own plans beside a Mamba trainer on ours, two folds,
nnU-Net's ensembling and model selection, the chosen model on a test folder, the full report with its overlays, and
the zip export installed on a clean results folder, all on nnU-Net's 2-D natural-image format (a .png dataset,
nnU-Net's NaturalImage2DIO: the ending is read from the dataset, never assumed; the .nii.gz path runs in the demo's
test); and the input errors that stop a benchmark before anything is trained."""
import hashlib
import json

import numpy as np
import pytest

from nnunetv2_mamba.cli import main
from nnunetv2_mamba.synthetic import write_phantom_dataset
import helpers
from helpers import DATASET, REPO, run
from nnunet_cli import read_predictions

PNG_DATASET = "Dataset901_CardiacPhantom"

RESENC = "nnUNetTrainer__nnUNetResEncUNetMPlans"
MAMBA = "nnUNetTrainerMambaUNet_Tiny__nnUNetMambaUNetPlans"
BUDGET = ["--epochs", "1", "--iterations-per-epoch", "2", "-device", "cpu"]


def nnunetv2_mamba(env: dict, *arguments: str, succeed: bool = True) -> str:
    result = helpers.nnunetv2_mamba(env, *arguments, timeout=1500)
    assert (result.returncode == 0) == succeed, result.stdout[-4000:]
    return result.stdout


def model_folders(root) -> list[str]:
    results = root / "results" / DATASET
    return sorted(p.name for p in results.iterdir() if "__" in p.name) if results.is_dir() else []


def test_bad_input_stops_before_anything_is_planned_or_trained(benchmark_input_folders):
    def refused(*arguments: str) -> str:
        with pytest.raises(SystemExit) as stopped:
            main(["benchmark", "-d", "900", *arguments, *BUDGET])
        return str(stopped.value.code)

    unknown = refused("--trainers", "nnUNetTrainer__NoSuchPlans")
    assert "NoSuchPlans.json does not exist and no known planner writes NoSuchPlans (known: nnUNetPlans" in unknown
    assert "unknown ResEnc preset 'S'; choose one of M, L, XL" in refused("--baseline-preset", "S")
    fold = refused("--trainers", "nnUNetTrainer", "--folds", "7")
    assert "fold 7 does not exist: the dataset has 5 folds (0-4, splits_final.json); --folds all" in fold
    assert not (benchmark_input_folders / "results").exists()


def test_the_default_comparison_plans_resenc_m_then_refuses_its_gpu_batch_on_the_cpu(planned_phantom):
    """nnU-Net's recommended comparison on the CPU: ResEnc M is planned with nnU-Net's planner, then refused at the
    GPU batch size it plans, with the way to run it at a stated one; nothing is trained."""
    root, env = planned_phantom["root"], planned_phantom["env"]
    before = model_folders(root)
    default = nnunetv2_mamba(env, "benchmark", "-d", "900", *BUDGET, succeed=False)
    assert "nnUNetTrainer__nnUNetResEncUNetMPlans: planned nnUNetResEncUNetMPlans" in default
    assert "on the CPU nnUNetPlans' batch is 2: run it at a stated batch size with --baseline-batch-size N" in default
    assert (root / "preprocessed" / DATASET / "nnUNetResEncUNetMPlans.json").is_file()
    assert model_folders(root) == before


def checksum(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resenc_and_mamba_on_their_own_plans_of_a_png_dataset_ensembled_selected_predicted_reported_and_exported(
        nnunet_workspace, tmp_path):
    root, env = nnunet_workspace["root"], nnunet_workspace["env"]
    raw = write_phantom_dataset(root / "raw", dataset_id=901, num_cases=6, image_size=(64, 64), num_test_cases=2,
                                file_ending=".png")
    assert sorted(p.name for p in (raw / "imagesTs").iterdir()) == ["phantom_test_000_0000.png",
                                                                     "phantom_test_001_0000.png"]
    run(["nnUNetv2_plan_and_preprocess", "-d", "901", "-c", "2d", "-np", "1", "-npfp", "1"], env)
    results, preprocessed = root / "results" / PNG_DATASET, root / "preprocessed" / PNG_DATASET
    methods = [f"{RESENC}__2d_bs2", MAMBA]
    resenc_folder, mamba_folder = "nnUNetTrainer_1ep2it__nnUNetResEncUNetMPlans__2d_bs2", \
        "nnUNetTrainerMambaUNet_Tiny_1ep2it__nnUNetMambaUNetPlans__2d"

    # fold 0 without --npz first: ensembling later must validate it again, never retrain it
    first = nnunetv2_mamba(env, "benchmark", "-d", "901", "--trainers", *methods, *BUDGET, "-o", str(tmp_path / "r0"))
    assert "planned nnUNetMambaUNetPlans" in first and "added 2d_bs2 (inherits_from 2d, batch size 2)" in first
    plans = json.loads((preprocessed / "nnUNetResEncUNetMPlans.json").read_text())
    assert plans["configurations"]["2d_bs2"] == {"inherits_from": "2d", "batch_size": 2}
    mamba_plans = json.loads((preprocessed / "nnUNetMambaUNetPlans.json").read_text())
    assert mamba_plans["configurations"]["2d"]["data_identifier"] == "nnUNetPlans_2d"  # the stock data, reused
    checkpoints = {f: checksum(results / f / "fold_0" / "checkpoint_final.pth") for f in (resenc_folder, mamba_folder)}

    report_dir = tmp_path / "report"
    second = nnunetv2_mamba(env, "benchmark", "-d", "901", "--trainers", *methods, *BUDGET, "--folds", "0", "1",
                            "--ensembles", "--test-folder", str(raw / "imagesTs"), "--test-labels",
                            str(raw / "labelsTs"), "-o", str(report_dir))
    assert f"{resenc_folder} fold 0: trained without --npz: validating again with --val --npz (no retraining)" in second
    assert f"{mamba_folder} fold 1: training from scratch" in second
    for folder in (resenc_folder, mamba_folder):
        assert checksum(results / folder / "fold_0" / "checkpoint_final.pth") == checkpoints[folder]
        for fold in (0, 1):
            validation = results / folder / f"fold_{fold}" / "validation"
            assert sorted(p.stem for p in validation.glob("*.npz")) == sorted(
                p.stem for p in validation.glob("*.png"))

    saved = json.loads((report_dir / "results.json").read_text())
    ensemble = f"ensemble: {RESENC}__2d_bs2 + {MAMBA}"
    validation = saved["splits"]["validation"]
    assert list(validation) == [f"{RESENC}__2d_bs2", MAMBA, ensemble]
    splits = json.loads((preprocessed / "splits_final.json").read_text())
    cross_validation = sorted(case for fold in (0, 1) for case in splits[fold]["val"])
    assert all(sorted(validation[name]["cases"]) == cross_validation for name in validation)
    selection = saved["selection"]
    assert set(selection["candidates"]) == set(validation)
    nnunet = json.loads((results / "inference_information.json").read_text())
    assert sorted(selection["candidates"].values()) == sorted(nnunet["all_results"].values())
    best_row = f"best: {selection['best']} (postprocessed)"
    assert list(saved["splits"]["test"]) == [f"{RESENC}__2d_bs2", MAMBA, best_row]
    report = (report_dir / "report.md").read_text()
    assert f"| {ensemble} |" in report and f"| **{selection['best']}** |" in report
    assert "nnUNetv2_apply_postprocessing -i OUTPUT_FOLDER" in report  # nnU-Net's instructions, copied in
    assert "| Method | fold 0 | fold 1 | CV mean |" in report
    assert f"| {MAMBA} | nnUNetMambaUNetPlans, 2d | 64 x 64, 2 |" in report
    for split in ("validation", "test"):
        assert f"(overlays_{split}.png)" in report and (report_dir / f"overlays_{split}.png").stat().st_size > 10_000
    assert "Not drawn" not in report
    for name in (f"{RESENC}__2d_bs2", MAMBA):
        assert sorted(p.name for p in (report_dir / "test_predictions" / name).glob("*.png")) == [
            "phantom_test_000.png", "phantom_test_001.png"]

    # the challenge path from the stock commands: the same prediction as the benchmark's best row, scored, and the
    # chosen models as zips that a clean results folder installs and predicts the same from
    submission, zips = tmp_path / "submission", tmp_path / "zips"
    nnunetv2_mamba(env, "predict-best", "-d", "901", "-i", str(raw / "imagesTs"), "-o", str(submission),
                   "--labels", str(raw / "labelsTs"), "--export", str(zips), "-device", "cpu")
    final = read_predictions(submission / "postprocessed", ".png")
    benchmark_best = read_predictions(report_dir / "test_predictions" /
                                      ("best." + selection["best"].replace(": ", ".").replace(" + ", "+")) /
                                      "postprocessed", ".png")
    assert sorted(final) == ["phantom_test_000.png", "phantom_test_001.png"] == sorted(benchmark_best)
    assert all(np.array_equal(final[name], benchmark_best[name]) for name in final)
    scores = json.loads((submission / "scores.json").read_text())
    assert sorted(scores["cases"]) == ["phantom_test_000", "phantom_test_001"]
    assert scores["aggregate"]["mean"]["Dice"]["mean"] == saved["splits"]["test"][best_row]["aggregate"]["mean"][
        "Dice"]["mean"]
    assert (zips / "postprocessing.pkl").is_file()
    clean = {**env, "nnUNet_results": str(tmp_path / "clean_results"), "nnUNet_extTrainer": str(REPO / "trainers")}
    for zip_file in sorted(zips.glob("*.zip")):
        run(["nnUNetv2_install_pretrained_model_from_zip", str(zip_file)], clean)
        trainer, plans, configuration = zip_file.stem.split("__")
        installed = tmp_path / f"installed_{zip_file.stem}"
        run(["nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(installed), "-d", "901", "-c", configuration,
             "-tr", trainer, "-p", plans, "-f", "0", "1", "-device", "cpu", "-npp", "1", "-nps", "1"],
            {**clean, "nnUNet_n_proc_DA": "0"})
        member = next(submission.glob(f"model_*_{zip_file.stem}"))
        original, reinstalled = read_predictions(member, ".png"), read_predictions(installed, ".png")
        assert sorted(original) == sorted(reinstalled)
        assert all(np.array_equal(original[name], reinstalled[name]) for name in original)

    # an ensemble as the choice runs nnUNetv2_ensemble between prediction and postprocessing
    nnunet["best_model_or_ensemble"]["selected_model_or_models"] = [
        {"trainer": f.split("__")[0], "plans_identifier": f.split("__")[1], "configuration": f.split("__")[2]}
        for f in (resenc_folder, mamba_folder)]
    (results / "inference_information.json").write_text(json.dumps(nnunet))
    ensembled = tmp_path / "ensembled"
    nnunetv2_mamba(env, "predict-best", "-d", "901", "-i", str(raw / "imagesTs"), "-o", str(ensembled),
                   "-device", "cpu")
    assert sorted(read_predictions(ensembled / "ensemble", ".png")) == sorted(
        read_predictions(ensembled / "postprocessed", ".png"))
    assert all(sorted(p.name for p in (ensembled / f"model_{k}_{f}").glob("*.npz")) == [
        "phantom_test_000.npz", "phantom_test_001.npz"] for k, f in ((1, resenc_folder), (2, mamba_folder)))
    refused = nnunetv2_mamba(env, "predict-best", "-d", "901", "-i", str(raw / "imagesTs"), "-o", str(zips),
                             "-device", "cpu", succeed=False)
    assert f"{zips} is not empty and holds no finished prediction" in refused
    assert (zips / "postprocessing.pkl").is_file()  # nothing deleted

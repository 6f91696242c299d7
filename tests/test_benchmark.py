"""Benchmark pieces without training: FLOP counting, resumable fold runs, trainer mapping, report from saved JSON."""
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image
from scipy.stats import wilcoxon

from nnunetv2_mamba.comparison.cost import count_flops
from nnunetv2_mamba.comparison.harness import BenchmarkConfig
from nnunetv2_mamba.comparison.report import save_results, write_report
from nnunetv2_mamba.comparison.training import FoldRun, train_fold
from nnunetv2_mamba.evaluation.aggregate import aggregate, with_class_mean
from nnunetv2_mamba.evaluation.metrics import case_metrics
from nnunetv2_mamba.nets.ss2d import SS2D


def test_flops_count_the_selective_scan_through_its_registered_operator():
    block = SS2D(d_model=32, d_state=4).eval()  # dt_rank 2 (a rank-1 einsum would be a multiply, not counted)
    x = torch.randn(1, 6, 5, 32)
    flops, scanned = count_flops(block, x)
    directions, inner, length, state = 4, 64, 6 * 5, 4
    assert block.dt_rank == 2
    assert scanned == 9 * 1 * length * (directions * inner) * state
    # in_proj 32->128 and out_proj 64->32 per pixel (multiply-add = 2 FLOPs), the two projection einsums, the conv
    projections = 2 * length * (32 * 128 + 64 * 32)
    x_proj = 2 * directions * length * inner * (block.dt_rank + 2 * state)
    dt_proj = 2 * directions * length * block.dt_rank * inner
    depthwise_conv = 2 * length * inner * 9
    assert flops == projections + x_proj + dt_proj + depthwise_conv + scanned


def test_the_forward_only_scan_operator_computes_what_the_autograd_path_computes():
    block = SS2D(d_model=16, d_state=4)
    x = torch.randn(2, 5, 7, 16)
    with torch.no_grad():
        forward_only = block(x)  # through torch.ops.nnunetv2_mamba.selective_scan
    with_grad = block(x.requires_grad_())
    torch.testing.assert_close(forward_only, with_grad.detach(), rtol=0, atol=0)


def test_fold_runs_resume_and_are_never_retrained(tmp_path):
    run = FoldRun("Dataset900_X", "nnUNetTrainer_Budget", "2d", 1, tmp_path)
    assert run.folder == tmp_path / "Dataset900_X" / "nnUNetTrainer_Budget__nnUNetPlans__2d" / "fold_1"
    assert run.train_command(900, "cpu")[-1] == "cpu"  # fresh start: no --c
    run.folder.mkdir(parents=True)
    (run.folder / "checkpoint_latest.pth").write_bytes(b"")
    assert run.train_command(900, "cpu")[-1] == "--c" and not run.is_finished()
    (run.folder / "checkpoint_final.pth").write_bytes(b"")
    run.validation_folder.mkdir()
    (run.validation_folder / "summary.json").write_text("{}")
    assert run.is_finished()
    assert train_fold(run, 900, "cpu", {}, tmp_path / "log.txt") is None  # nothing run, nothing logged
    assert not (tmp_path / "log.txt").exists()


def test_budget_flags_map_trainers_to_their_budget_variants():
    plain = BenchmarkConfig(900, ["nnUNetTrainer", "nnUNetTrainerVMUNet"])
    assert plain.trained_as() == {"nnUNetTrainer": "nnUNetTrainer", "nnUNetTrainerVMUNet": "nnUNetTrainerVMUNet"}
    budget = BenchmarkConfig(900, ["nnUNetTrainer", "nnUNetTrainerVMUNet", "nnUNetTrainerMambaUNet_Tiny"], epochs=3)
    assert budget.trained_as() == {"nnUNetTrainer": "nnUNetTrainer_Budget",
                                   "nnUNetTrainerVMUNet": "nnUNetTrainerVMUNet_Budget",
                                   "nnUNetTrainerMambaUNet_Tiny": "nnUNetTrainerMambaUNet_Tiny"}


def _write(array, path):
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


def test_report_from_saved_results(tmp_path):
    """Two methods on 6 cases: the better one is bold, p-values equal scipy's, figures are real images."""
    rng = np.random.default_rng(0)
    folders = {n: tmp_path / n for n in ("images", "references", "base", "better")}
    for folder in folders.values():
        folder.mkdir()
    labels = {"A": 1, "B": 2}
    scored = {"base": {}, "better": {}}
    for index in range(6):
        reference = np.zeros((1, 24, 24), np.uint8)
        reference[0, 4:12, 4:12], reference[0, 14:20, 14:20] = 1, 2
        _write(reference, folders["references"] / f"c{index}.nii.gz")
        _write(rng.normal(size=(1, 24, 24)).astype(np.float32), folders["images"] / f"c{index}_0000.nii.gz")
        for method, shift in (("base", 2 + index % 2), ("better", 1)):
            prediction = np.roll(reference, shift, axis=2)
            _write(prediction, folders[method] / f"c{index}.nii.gz")
            scored[method][f"c{index}"] = with_class_mean(case_metrics(reference, prediction, labels, (5, 1.5, 1.5)))
    split = {m: {"labels": labels, "cases": c, "aggregate": aggregate(c)} for m, c in scored.items()}
    cost = {"parameters": 1e6, "flops": 2e9, "train_seconds_per_iteration": 0.5, "inference_seconds_per_case": 1.0,
            "peak_memory_mb": 100.0}
    curves = {m: {"0": {"train_losses": [1.0, 0.5], "val_losses": [1.1, 0.7], "mean_fg_dice": [0.2, 0.6]}}
              for m in scored}
    results = {"dataset": "Dataset900_X", "dataset_id": 900, "configuration": "2d", "folds": [0], "device": "cpu",
               "trained_as": {"base": "base", "better": "better"}, "budget": {"epochs": 2},
               "splits": {"validation": split}, "costs": {"base": cost, "better": cost}, "curves": curves,
               "overlay_sources": {"validation": {"images": str(folders["images"]),
                                                  "references": str(folders["references"]),
                                                  "predictions": {m: [str(folders[m])] for m in scored}}}}
    save_results(results, tmp_path / "report")
    text = write_report(tmp_path / "report").read_text()

    better_dice = split["better"]["aggregate"]["mean"]["Dice"]
    assert f"| better | **{better_dice['mean']:.4f} ± {better_dice['std']:.4f}** |" in text
    a = [scored["base"][c]["mean"]["Dice"] for c in sorted(scored["base"])]
    b = [scored["better"][c]["mean"]["Dice"] for c in sorted(scored["base"])]
    assert f"p={wilcoxon(a, b).pvalue:.4f}" in text
    assert "| 1.00 | 2.00 | 0.500 | 1.000 | 100 |" in text  # cost columns
    assert (tmp_path / "report" / "report.html").read_text().count("<table>") == 4
    for name in ("dice_histogram_validation.png", "overlays_validation.png", "training_curves.png"):
        image = np.asarray(Image.open(tmp_path / "report" / name).convert("L"), dtype=float)
        assert min(image.shape) > 100 and image.std() > 0
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert not math.isnan(saved["splits"]["validation"]["base"]["aggregate"]["A"]["HD95"]["mean"])


def test_report_only_without_results_says_what_to_do(tmp_path):
    with pytest.raises(SystemExit, match="without --report-only"):
        write_report(tmp_path)

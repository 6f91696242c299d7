"""The benchmark: FLOP counting, resumable fold runs, budgets in trainer names, the report and its figures from saved
JSON, and one end-to-end run on a small phantom that a second budget retrains."""
import json
import math
import re

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image
from scipy.stats import bootstrap, wilcoxon

from nnunetv2_mamba.comparison import figures
from nnunetv2_mamba.comparison.cost import count_flops
from nnunetv2_mamba.comparison.benchmark import BenchmarkConfig
from nnunetv2_mamba.comparison.report import metric_table, save_results, write_report
from nnunetv2_mamba.evaluation.metrics import METRICS
from nnunetv2_mamba.comparison.methods import Method, MethodError, Model, ensemble_members
from nnunetv2_mamba.comparison.job_device import DEVICE
from nnunetv2_mamba.comparison.runs import FoldRun
from nnunetv2_mamba.evaluation.aggregate import aggregate, with_class_mean
from nnunetv2_mamba.evaluation.metrics import case_metrics
from nnunetv2_mamba.nets.ss2d import SS2D
from nnunetv2_mamba.training.checkpoints import read_training_checkpoint
from helpers import DATASET, nnunetv2_mamba


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
    run = FoldRun(Model("nnUNetTrainer_2ep3it", "nnUNetResEncUNetMPlans", "2d_bs2"), 1, "Dataset900_X", tmp_path)
    assert run.folder == tmp_path / "Dataset900_X" / "nnUNetTrainer_2ep3it__nnUNetResEncUNetMPlans__2d_bs2" / "fold_1"
    assert run.key == "train.nnUNetTrainer_2ep3it__nnUNetResEncUNetMPlans__2d_bs2.fold1"  # job key, log file stem
    command = run.train_command(900)
    assert command[1:] == ["900", "2d_bs2", "1", "-tr", "nnUNetTrainer_2ep3it", "-p", "nnUNetResEncUNetMPlans",
                           "-device", DEVICE]  # the job's own device, decided where it runs
    assert run.status() == "training from scratch"
    run.folder.mkdir(parents=True)
    (run.folder / "checkpoint_latest.pth").write_bytes(b"")
    assert run.train_command(900, npz=True)[-2:] == ["--npz", "--c"] and not run.is_finished()
    assert run.status() == "continuing (--c)"
    (run.folder / "checkpoint_final.pth").write_bytes(b"")
    run.validation_folder.mkdir()
    assert run.status() == "trained, validating (--val)" and run.train_command(900)[-1] == "--val"
    (run.validation_folder / "summary.json").write_text("{}")
    (run.validation_folder / "case_1.nii.gz").write_bytes(b"")
    assert run.is_finished() and run.status() == "finished already"
    assert not run.is_finished(npz=True) and run.status(npz=True).startswith("trained without --npz")
    assert run.train_command(900, npz=True)[-2:] == ["--npz", "--val"]  # validate again, never retrain
    (run.validation_folder / "case_1.npz").write_bytes(b"")
    (run.validation_folder / "case_1.pkl").write_bytes(b"")
    assert run.is_finished(npz=True) and run.status(npz=True) == "finished already"

    longer = FoldRun(Model("nnUNetTrainer_20ep3it", "nnUNetResEncUNetMPlans", "2d_bs2"), 1, "Dataset900_X", tmp_path)
    assert not longer.is_finished() and longer.finished_with_other_budgets() == ["nnUNetTrainer_2ep3it"]
    other_fold = FoldRun(longer.model, 0, "Dataset900_X", tmp_path)
    other_plans = FoldRun(Model("nnUNetTrainer_20ep3it", "nnUNetPlans", "2d_bs2"), 1, "Dataset900_X", tmp_path)
    other_trainer = FoldRun(Model("nnUNetTrainerVMUNet_20ep3it", "nnUNetResEncUNetMPlans", "2d_bs2"), 1,
                            "Dataset900_X", tmp_path)
    assert other_fold.finished_with_other_budgets() == other_plans.finished_with_other_budgets() == []
    assert other_trainer.finished_with_other_budgets() == []


def test_a_model_is_its_nnunet_identifier_its_commands_and_its_ensembles(tmp_path):
    model = Model("nnUNetTrainer_2ep3it", "nnUNetResEncUNetMPlans", "2d_bs2")
    assert Model.from_identifier(model.identifier) == model
    assert model.folder(tmp_path, "Dataset900_X") == tmp_path / "Dataset900_X" / model.identifier
    names = ["-c", "2d_bs2", "-tr", "nnUNetTrainer_2ep3it", "-p", "nnUNetResEncUNetMPlans"]
    assert model.validate_command(900, 2, "cpu", npz=True)[1:] == ["900", "2d_bs2", "2", *names[2:], "-device", "cpu",
                                                                    "--npz", "--val"]
    assert model.predict_command(900, [0, 1], tmp_path / "in", tmp_path / "out", DEVICE, probabilities=True)[1:] == [
        "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "900", *names, "-f", "0", "1", "-device", DEVICE,
        "-npp", "1", "-nps", "1", "--save_probabilities"]
    assert model.export_command(900, ["0"], tmp_path / "m.zip")[1:] == ["-d", "900", "-o", str(tmp_path / "m.zip"),
                                                                       *names, "-f", "0"]

    from nnunetv2.utilities.file_path_utilities import get_ensemble_name

    other = Model("nnUNetTrainerVMUNet_2ep3it", "nnUNetVMUNetPlans", "2d")
    key = get_ensemble_name(str(model.folder(tmp_path, "D")), str(other.folder(tmp_path, "D")), (0, 1))
    assert ensemble_members(key) == [model, other] and ensemble_members(model.identifier) == []


def test_every_trainer_trains_with_the_budget_in_its_name():
    given = BenchmarkConfig(900, ["nnUNetTrainer", "nnUNetTrainerVMUNet"])
    assert given.trained_as() == {"nnUNetTrainer": "nnUNetTrainer_1000ep250it",
                                  "nnUNetTrainerVMUNet": "nnUNetTrainerVMUNet_1000ep250it"}
    budget = BenchmarkConfig(900, ["nnUNetTrainer", "nnUNetTrainerVMUNet_PaperRecipe", "nnUNetTrainerMambaUNet_Tiny",
                                   "nnUNetTrainerVMUNet_4ep4it__nnUNetVMUNetPlans"], epochs=3, iterations_per_epoch=7)
    assert budget.trained_as() == {"nnUNetTrainer": "nnUNetTrainer_3ep7it",
                                   "nnUNetTrainerVMUNet_PaperRecipe": "nnUNetTrainerVMUNet_PaperRecipe_3ep7it",
                                   "nnUNetTrainerMambaUNet_Tiny": "nnUNetTrainerMambaUNet_Tiny_3ep7it",
                                   "nnUNetTrainerVMUNet_4ep4it__nnUNetVMUNetPlans": "nnUNetTrainerVMUNet_4ep4it"}


def test_methods_name_their_plans_and_the_default_is_nnunets_recommended_comparison():
    assert Method.parse("nnUNetTrainer", "2d") == Method("nnUNetTrainer", "nnUNetPlans", "2d")
    resenc = Method.parse("nnUNetTrainer__nnUNetResEncUNetLPlans__3d_fullres_bs4", "2d")
    assert (resenc.plans, resenc.configuration, resenc.base_configuration, resenc.derived_batch_size) == (
        "nnUNetResEncUNetLPlans", "3d_fullres_bs4", "3d_fullres", 4)
    assert resenc.name("2d") == "nnUNetTrainer__nnUNetResEncUNetLPlans__3d_fullres_bs4"
    assert Method.parse("nnUNetTrainerVMUNet__nnUNetVMUNetPlans", "3d_fullres").name("3d_fullres") == \
        "nnUNetTrainerVMUNet__nnUNetVMUNetPlans"
    for bad in ("nnUNetTrainer__", "a__b__c__d", "nnUNetTrainer__nnUNet-Plans"):
        with pytest.raises(MethodError, match="TRAINER__PLANS__CONFIG"):
            Method.parse(bad, "2d")

    default = BenchmarkConfig(900, epochs=2, iterations_per_epoch=3)
    assert list(default.methods()) == ["nnUNetTrainer", "nnUNetTrainer__nnUNetResEncUNetMPlans",
                                       "nnUNetTrainerMambaUNet__nnUNetMambaUNetPlans",
                                       "nnUNetTrainerVMUNet__nnUNetVMUNetPlans"]
    on_cpu = BenchmarkConfig(900, baseline_preset="L", baseline_batch_size=2).methods()
    assert on_cpu["nnUNetTrainer__nnUNetResEncUNetLPlans__2d_bs2"] == Method("nnUNetTrainer",
                                                                            "nnUNetResEncUNetLPlans", "2d_bs2")
    assert [m.is_ours for m in on_cpu.values()] == [False, False, True, True]
    with pytest.raises(MethodError, match="unknown ResEnc preset 'S'; choose one of M, L, XL"):
        BenchmarkConfig(900, baseline_preset="S").methods()


def _write(array, path):
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


def setup_of(trainer: str, epochs: int, iterations: int) -> dict:
    """A training_setup.json as TrainingBudget writes it (the optimizer's lr is the first, warm-up step's)."""
    return {"trainer": trainer, "epochs": epochs, "iterations_per_epoch": iterations, "val_iterations_per_epoch": 1,
            "batch_size": 2, "patch_size": [24, 24], "deep_supervision": True, "network": "PlainConvUNet",
            "optimizer": "SGD", "initial_lr": 0.01, "optimizer_settings": {"lr": 0.0001, "momentum": 0.99},
            "lr_scheduler": "PolyLRScheduler", "non_finite_guard": True, "atomic_checkpoints": True,
            "torch_compile": False, "device": "cpu"}


def curves_of(trainer: str, epochs: int, iterations: int, seconds_per_epoch: float) -> dict:
    """One fold's curves as read_training_log returns them: nnU-Net's logging plus the run's setup."""
    dice = np.linspace(0.1, 0.8, epochs)
    starts = 1000.0 + np.arange(epochs) * (seconds_per_epoch + 5)  # 5 s between epochs that must not count
    return {"train_losses": list(np.linspace(1, 0.2, epochs)), "val_losses": list(np.linspace(1.1, 0.3, epochs)),
            "mean_fg_dice": list(dice), "ema_fg_dice": list(dice * 0.9),
            "epoch_start_timestamps": list(starts), "epoch_end_timestamps": list(starts + seconds_per_epoch),
            "setup": setup_of(trainer, epochs, iterations), "iterations_per_epoch": iterations,
            "seconds_per_iteration": seconds_per_epoch / iterations}


def test_report_from_saved_results(tmp_path):
    """Two methods on 6 cases: the better one is bold, p-values equal scipy's, figures are real images, each run's
    budget is reported, and writing the report again regenerates every figure."""
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
            "peak_memory_mb": 100.0, "patch_size": [24, 24], "batch_size": 2}
    base_cost = {**cost, "flops": 1e9, "patch_size": [16, 16], "batch_size": 3}
    curves = {"base": {"0": curves_of("base_3ep4it", 3, 4, 2.0)},
              "better": {"0": curves_of("better_3ep4it", 3, 4, 6.0)}}
    results = {"dataset": "Dataset900_X", "dataset_id": 900, "configuration": "2d", "folds": [0], "device": "cpu",
               "trained_as": {"base": "base_3ep4it", "better": "better_3ep4it"},
               "methods": {"base": {"trainer": "base", "plans": "nnUNetPlans", "configuration": "2d", "ours": False},
                           "better": {"trainer": "better", "plans": "BetterPlans", "configuration": "2d_bs2",
                                      "ours": True}},
               "fold_of_case": {f"c{i}": i % 2 for i in range(6)},
               "cpu_settings": {"nnUNet_n_proc_DA": "0"},
               "where": {"better": {"0": {"host": "node7", "device": "cuda", "gpu": "NVIDIA H100", "gpus_asked": 1,
                                          "cpu_settings": {}, "error": None}}},
               "splits": {"validation": split}, "costs": {"base": base_cost, "better": cost}, "curves": curves,
               "overlay_sources": {"validation": {"images": str(folders["images"]),
                                                  "references": str(folders["references"]),
                                                  "predictions": {m: [str(folders[m])] for m in scored}}}}
    report_dir = tmp_path / "report"
    save_results(results, report_dir)
    text = write_report(report_dir).read_text()

    better_dice = split["better"]["aggregate"]["mean"]["Dice"]
    assert f"| better | **{better_dice['mean']:.4f} ± {better_dice['std']:.4f}** |" in text
    a = [scored["base"][c]["mean"]["Dice"] for c in sorted(scored["base"])]
    b = [scored["better"][c]["mean"]["Dice"] for c in sorted(scored["base"])]
    assert f"p={wilcoxon(a, b).pvalue:.4f}" in text
    # the cost table: own plans, patch and batch; GFLOPs per step = per patch x batch; the compute-matched baseline
    assert ("| better | BetterPlans, 2d_bs2 | 24 x 24, 2 | 1.00 | 2.00 | 100 | 0.500 | 1.000 | 4.00 | base (1.33x its "
            "GFLOPs / step) |") in text
    assert "| base | nnUNetPlans, 2d | 16 x 16, 3 | 1.00 | 1.00 | 100 | 0.500 | 1.000 | 3.00 | – |" in text
    assert "GFLOPs / step) | – | 0.5 |" in text  # measured on: not recorded; train wall: (2 x 11 + 6) s / 60
    per_fold = [np.mean([scored["better"][f"c{i}"]["mean"]["Dice"] for i in range(fold, 6, 2)]) for fold in (0, 1)]
    assert (f"| better | {per_fold[0]:.4f} | {per_fold[1]:.4f} | {better_dice['mean']:.4f} |") in text
    assert "| better | better_3ep4it | 0 | 3 x 4, 1 | SGD (peak lr 0.01, momentum 0.99) | PolyLRScheduler | " \
           "2, 24 x 24 | yes, none | yes | yes | no |" in text  # Runs table: the recipe's peak lr; no drop path: none
    assert "| yes | yes | no | node7, cuda (NVIDIA H100) |" in text  # where the run's job ran
    assert "On CPU the benchmark set for nnU-Net's processes: nnUNet_n_proc_DA=0 (data augmentation" in text
    # it opens with the verdict: the best method, and ours against the baseline with scipy's paired bootstrap
    # interval of the mean difference, no noise floor without repeats
    interval = bootstrap((np.array(b), np.array(a)), lambda y, x, axis: np.mean(y - x, axis=axis), paired=True,
                         random_state=0).confidence_interval
    line = (f"- better vs the baseline base: Δ {np.mean(np.subtract(b, a)):+.4f} [{interval.low:+.4f}, "
            f"{interval.high:+.4f}], p={wilcoxon(a, b).pvalue:.4f} (n=6): interval excludes 0; no noise floor")
    assert text.index("## Verdict\n\n- Best single method: better, CV Dice") < text.index("|") and line in text
    assert (report_dir / "report.html").read_text().count("<table>") == 8  # with the Dice-vs-baseline table
    pngs = ("dice_histogram_validation.png", "overlays_validation.png", "training_curves.png", "learning_curves.png")
    for name in pngs:
        image = np.asarray(Image.open(report_dir / name).convert("L"), dtype=float)
        assert min(image.shape) > 100 and image.std() > 0
    saved = json.loads((report_dir / "results.json").read_text())
    assert not math.isnan(saved["splits"]["validation"]["base"]["aggregate"]["A"]["HD95"]["mean"])

    for name in pngs:
        (report_dir / name).unlink()
    write_report(report_dir)
    assert all((report_dir / name).is_file() for name in pngs)


def test_learning_curves_put_every_trainer_on_one_figure_by_iterations_and_by_time():
    curves = {"cnn": {"0": curves_of("cnn_4ep5it", 4, 5, 1.0)}, "mamba": {"0": curves_of("mamba_4ep5it", 4, 5, 3.0)},
              "vm": {"0": curves_of("vm_2ep10it", 2, 10, 4.0)}}
    fig = figures.learning_curve_figure(curves)
    by_iterations, by_time = fig.axes
    for ax in (by_iterations, by_time):
        assert len(ax.get_lines()) == 2 * len(curves)  # pseudo Dice and its EMA per trainer
    ema = [line for line in by_iterations.get_lines() if line.get_label() in curves]
    assert [line.get_label() for line in ema] == list(curves)
    assert list(ema[2].get_xdata()) == [10, 20]  # epochs x the run's iterations per epoch
    ema_by_time = [line for line in by_time.get_lines() if line.get_label() in curves]
    assert list(ema_by_time[1].get_xdata()) == [3.0, 6.0, 9.0, 12.0]  # summed epoch durations, no pauses
    assert list(ema[1].get_ydata()) == curves["mamba"]["0"]["ema_fg_dice"]
    assert [t.get_text() for t in fig.legends[0].get_texts()][:3] == list(curves)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    assert (pixels.min(-1) < 250).mean() > 0.01  # not blank


def test_a_mean_with_undefined_cases_is_never_the_best():
    """A method that misses class A in 2 of 3 cases has HD95 0.0 on the one case it found: that mean is shown with
    its undefined count and never in bold; the method with every case defined is the best."""
    reference = np.zeros((1, 20, 20), np.uint8)
    reference[0, 4:10, 4:10], reference[0, 12:18, 12:18] = 1, 2
    missed = np.where(reference == 1, 0, reference)
    shifted = np.roll(reference, 1, axis=2)
    cases = {"misses": {f"c{i}": with_class_mean(case_metrics(reference, reference if i == 0 else missed,
                                                                 {"A": 1, "B": 2}, (1, 1, 1))) for i in range(3)},
             "shifted": {f"c{i}": with_class_mean(case_metrics(reference, shifted, {"A": 1, "B": 2}, (1, 1, 1)))
                         for i in range(3)}}
    split = {m: {"cases": c, "aggregate": aggregate(c)} for m, c in cases.items()}
    header, misses, shifted_row = metric_table(split, "A")
    column = header.index("HD95")
    assert misses[column] == "0.0000 ± 0.0000 (2 undef.)"
    assert shifted_row[column] == "**1.0000 ± 0.0000**"
    header, misses, shifted_row = metric_table(split, "mean")  # class B is found: the class mean is defined
    assert misses[column] == "0.0000 ± 0.0000 (2 undef.)" and shifted_row[column].startswith("**")

    only_undefined = {"misses": split["misses"]}
    assert "**" not in "".join(metric_table(only_undefined, "A")[1][column])


def test_overlays_draw_and_name_every_one_of_nine_classes(tmp_path):
    labels = {f"class {value}": value for value in range(1, 10)}
    reference = np.zeros((1, 48, 48), np.uint8)
    for value in labels.values():
        row, column = divmod(value - 1, 3)
        reference[0, 3 + 15 * row: 13 + 15 * row, 3 + 15 * column: 13 + 15 * column] = value
    for name in ("images", "references", "method"):
        (tmp_path / name).mkdir()
    _write(reference, tmp_path / "references" / "c0.nii.gz")
    _write(reference, tmp_path / "method" / "c0.nii.gz")
    _write(np.full((1, 48, 48), 0.5, np.float32), tmp_path / "images" / "c0_0000.nii.gz")
    sources = {"images": str(tmp_path / "images"), "references": str(tmp_path / "references"),
               "predictions": {"method": [str(tmp_path / "method")]}}
    fig = figures.overlay_figure(sources, labels, num_cases=1)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [*labels, "reference", "prediction"]
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255
    box = fig.axes[0].get_window_extent()
    panel = pixels[int(pixels.shape[0] - box.y1): int(pixels.shape[0] - box.y0), int(box.x0): int(box.x1)]
    colours = figures.distinct_colours(len(labels))
    assert len(set(colours)) == len(labels)
    for name, colour in zip(labels, colours):
        assert (np.abs(panel - colour).max(-1) < 0.02).sum() >= 20, name  # its contour is drawn in the panel
    assert len(set(figures.distinct_colours(40))) == 40


def test_a_report_without_results_says_what_to_do(tmp_path):
    with pytest.raises(SystemExit, match="results.json does not exist; run the benchmark first"):
        write_report(tmp_path)


def test_a_benchmark_with_another_budget_trains_again_and_reports_each_runs_budget(planned_phantom, tmp_path):
    """nnU-Net's CNN at 1 epoch x 2 iterations, then at 1 x 1: a new run (its budget is in its name), said so, never
    the finished 1 x 2 fold; the CNN trains with our safeguards, and what each run used is read from its
    training_setup.json into the report."""
    root, env = planned_phantom["root"], planned_phantom["env"]
    report, results_dir = tmp_path / "report", root / "results" / DATASET

    def benchmark(iterations: int) -> str:
        result = nnunetv2_mamba(env, "benchmark", "-d", "900", "--trainers", "nnUNetTrainer", "--epochs", "1",
                                "--iterations-per-epoch", str(iterations), "-device", "cpu", "-o", str(report))
        assert result.returncode == 0, result.stdout[-4000:]
        return result.stdout

    first = benchmark(iterations=2)
    assert "[benchmark] on CPU: nnUNet_n_proc_DA=0 (data augmentation runs in the training process" in first
    assert f"nnUNetTrainer_1ep2it__nnUNetPlans__2d fold 0: training from scratch -> {results_dir}" in first
    setup = json.loads((results_dir / "nnUNetTrainer_1ep2it__nnUNetPlans__2d" / "fold_0" / "training_setup.json")
                       .read_text())
    assert (setup["trainer"], setup["epochs"], setup["iterations_per_epoch"]) == ("nnUNetTrainer_1ep2it", 1, 2)
    assert setup["network"] == "PlainConvUNet" and setup["optimizer"] == "SGD" and setup["drop_path_rate"] is None
    assert setup["non_finite_guard"] and setup["atomic_checkpoints"] and not setup["torch_compile"]
    saved = json.loads((report / "results.json").read_text())
    assert saved["curves"]["nnUNetTrainer"]["0"]["iterations_per_epoch"] == 2
    image = np.asarray(Image.open(report / "learning_curves.png").convert("L"), dtype=float)
    assert min(image.shape) > 100 and image.std() > 0

    second = benchmark(iterations=1)
    assert (f"nnUNetTrainer_1ep1it__nnUNetPlans__2d fold 0: training from scratch -> "
            f"{results_dir / 'nnUNetTrainer_1ep1it__nnUNetPlans__2d'}" in second)
    assert "(finished with another budget, not reused: nnUNetTrainer_1ep2it)" in second
    assert "| nnUNetTrainer | nnUNetTrainer_1ep1it | 0 | 1 x 1, 1 | SGD (" in (report / "report.md").read_text()
    checkpoint = read_training_checkpoint(results_dir / "nnUNetTrainer_1ep2it__nnUNetPlans__2d" / "fold_0" /
                                          "checkpoint_final.pth")
    assert checkpoint["trainer_name"] == "nnUNetTrainer_1ep2it"  # the first budget's run is left as it was


@pytest.mark.parametrize("ending", [".nii.gz", ".png", ".tif", ".nrrd", ".mha"])
def test_overlays_read_every_file_ending_nnunet_reads_and_say_why_when_none_can_be_drawn(tmp_path, ending):
    """The overlay figure finds and reads cases of the dataset's file ending with nnU-Net's own reader for it (2-D
    natural images for .png/.tif, SimpleITK for the others); a report without a case every method predicted says
    so where the figure would be."""
    from PIL import Image

    reference = np.zeros((32, 32), np.uint8)
    reference[8:20, 8:20] = 1
    image = (np.arange(32 * 32).reshape(32, 32) % 200).astype(np.uint8)
    for name in ("images", "references", "method", "empty"):
        (tmp_path / name).mkdir()

    def write(array, path):
        if ending in (".png", ".tif"):
            Image.fromarray(array).save(path)
        else:
            _write(array[None], path)

    write(reference, tmp_path / "references" / f"c0{ending}")
    write(np.roll(reference, 2, axis=1), tmp_path / "method" / f"c0{ending}")
    write(image, tmp_path / "images" / f"c0_0000{ending}")
    sources = {"images": str(tmp_path / "images"), "references": str(tmp_path / "references"),
               "predictions": {"method": [str(tmp_path / "method")]}, "file_ending": ending}
    fig = figures.overlay_figure(sources, {"A": 1}, num_cases=1)
    assert fig.axes[0].get_title() == "method\nc0"
    assert fig.axes[0].get_images()[0].get_array().shape == (32, 32)
    with pytest.raises(figures.FigureNotDrawn, match=f"no '\\*{re.escape(ending)}' case is predicted by every"):
        figures.overlay_figure({**sources, "predictions": {"method": [str(tmp_path / "empty")]}}, {"A": 1})


def test_report_details_tiny_p_values_ties_code_spans_and_long_titles():
    from nnunetv2_mamba.comparison.report import _inline, _p_value

    assert _p_value(3e-7) == "p < 0.0001" and _p_value(0.01234) == "p=0.0123"
    zero = {"mean": 0.0, "std": 0.0}
    split = {m: {"aggregate": {"A": {metric: zero for metric in METRICS}}} for m in ("base", "other")}
    assert "**" not in "".join(sum(metric_table(split, "A"), []))  # every method 0 Dice: none is the best
    assert _inline("Inference (`nnunetv2_mamba predict-best` <runs>)") == \
        "Inference (<code>nnunetv2_mamba predict-best</code> &lt;runs&gt;)"
    title = figures._wrapped("ensemble: nnUNetTrainerMambaUNet + nnUNetTrainer__nnUNetResEncUNetMPlans__2d_bs2")
    assert max(map(len, title.splitlines())) <= 30 and title.replace("\n", "").replace(" ", "") == \
        "ensemble:nnUNetTrainerMambaUNet+nnUNetTrainer__nnUNetResEncUNetMPlans__2d_bs2"


def test_a_run_without_a_job_record_here_is_reported_without_one():
    """A run this report's jobs did not run (trained by another benchmark's jobs, or before jobs recorded where they
    ran) has no record: null, read back as NaN. Its Runs-table cell says so instead of stopping the report."""
    from nnunetv2_mamba.comparison.report import _ran_on

    assert _ran_on(float("nan")) == _ran_on(None) == _ran_on({}) == "–"
    assert _ran_on({"host": "node1", "device": "cuda", "gpu": "H100"}) == "node1, cuda (H100)"
    assert _ran_on({"host": "node1", "device": "cpu", "gpu": float("nan")}) == "node1, cpu"

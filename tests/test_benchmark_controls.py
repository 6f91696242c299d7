"""``benchmark --controls --repeats 2`` end to end, at one epoch of one iteration on the planned phantom: a Mamba
network, its NoScan and OneWay controls, two seeds each, over two folds. Every run trains into its own results
folder with its seed and scan recorded, and the report opens with the verdict, has the controls' section with
intervals and the repeats' rows with the noise floor. (The baseline is the Mamba network itself: the CNN's runs
would add time, and the comparisons against a baseline are tested on hand-made results in
test_benchmark_noise.py.)"""
import json

from helpers import DATASET, nnunetv2_mamba

PLANS = "nnUNetMambaUNetPlans32"  # conftest.tiny_mamba_plans: the session's plans of our planner (nnUNetMambaUNetPlans
# itself is what test_benchmark_ensembles asserts the benchmark plans)
MAMBA = f"nnUNetTrainerMambaUNet_Tiny__{PLANS}"


def test_controls_and_repeats_train_every_run_and_report_the_scan_and_the_noise_floor(planned_phantom,
                                                                                     tiny_mamba_plans, tmp_path):
    env = {**planned_phantom["env"], "nnUNet_results": str(tmp_path / "results")}
    report = tmp_path / "report"
    result = nnunetv2_mamba(env, "benchmark", "-d", "900", "--trainers", MAMBA, "--controls", "--repeats", "2",
                            "--folds", "0", "1", "--epochs", "1", "--iterations-per-epoch", "1", "-device", "cpu",
                            "-o", str(report), timeout=3000)
    assert result.returncode == 0, result.stdout[-4000:]

    results = tmp_path / "results" / DATASET
    for control, scan in (("", "cross"), ("_NoScan", "none"), ("_OneWay", "one_way")):
        for seed in (0, 1):
            trainer = f"nnUNetTrainerMambaUNet_Tiny{control}_1ep1it_seed{seed}"
            for fold in (0, 1):
                folder = results / f"{trainer}__{PLANS}__2d" / f"fold_{fold}"
                assert (folder / "checkpoint_final.pth").is_file()
                assert (folder / "validation" / "summary.json").is_file()
                setup = json.loads((folder / "training_setup.json").read_text())
                assert (setup["trainer"], setup["seed"], setup["scan"]) == (trainer, seed, scan)

    saved = json.loads((report / "results.json").read_text())
    names = [MAMBA, f"nnUNetTrainerMambaUNet_Tiny_NoScan__{PLANS}", f"nnUNetTrainerMambaUNet_Tiny_OneWay__{PLANS}"]
    assert list(saved["splits"]["validation"]) == names and saved["seeds"] == [0, 1]
    splits = json.loads((planned_phantom["root"] / "preprocessed" / DATASET / "splits_final.json").read_text())
    cross_validation = sorted(case for fold in (0, 1) for case in splits[fold]["val"])
    assert all(sorted(by_seed[seed]) == cross_validation for by_seed in saved["repeats"].values()
               for seed in ("0", "1"))
    assert [saved["methods"][n].get("control_of") for n in names[1:]] == [MAMBA, MAMBA]

    text = (report / "report.md").read_text()
    assert text.index("## Verdict") < text.index("|")
    assert "- Noise floor (the baseline's repeat-to-repeat difference in CV Dice): " in text
    assert f"- {MAMBA} vs its control {names[1]}: Δ " in text and f"- {MAMBA} vs its control {names[2]}: Δ " in text
    assert f"## Does the scan matter? {MAMBA} against its scan controls" in text
    assert f"| {MAMBA} − {names[1]} | " in text and f"| {MAMBA} − {names[2]} | " in text
    assert "## Seeded repeats: Dice mean ± sd over each method's repeats" in text
    assert all(f"| {name} | " in text and " ± " in text for name in names)
    assert "## Noise floor\n\nNoise floor " in text
    # the scan's cost: NoScan has fewer parameters and FLOPs than its parent
    costs = saved["costs"]
    assert costs[names[1]]["parameters"] < costs[MAMBA]["parameters"]
    assert costs[names[1]]["flops"] < costs[MAMBA]["flops"]
    assert f"## What the scan costs: {MAMBA} and its controls" in text

"""Does the scan matter, and is a difference more than noise? The paired bootstrap interval and the noise floor on
numbers whose answer is known, the names of scan controls and seeded repeats and which of their runs train and
which the report shows, the input errors that stop a benchmark before anything is trained, and a report of a
network, its controls and their repeats written from hand-made results."""
import math

import numpy as np
import pytest

from nnunetv2_mamba.cli import main
from nnunetv2_mamba.comparison.benchmark import Benchmark, BenchmarkConfig
from nnunetv2_mamba.comparison.execution import make_executor
from nnunetv2_mamba.comparison.methods import Method, Model, run_trainer_name
from nnunetv2_mamba.comparison.report import save_results, write_report
from nnunetv2_mamba.comparison.workspace import NnUNetPaths
from nnunetv2_mamba.comparison.statistics import bootstrap_interval, noise_floor, paired_comparison, within_noise
from nnunetv2_mamba.evaluation.aggregate import CLASS_MEAN, aggregate, with_class_mean
from nnunetv2_mamba.evaluation.metrics import case_metrics
from nnunetv2_mamba.training.budget import TrainerNameError

MAMBA = "nnUNetTrainerMambaUNet_Tiny__nnUNetMambaUNetPlans"


def test_the_paired_bootstrap_interval_is_the_mean_differences_and_pairs_the_cases():
    # every case differs by the same 0.1: nothing to resample, the interval is the difference itself
    a = np.linspace(0.2, 0.9, 8)
    assert bootstrap_interval(a, a + 0.1) == pytest.approx((0.1, 0.1), abs=1e-12)
    # cases spread over [0, 1], each pair 0.04 or 0.06 apart: paired, the interval is about 0.05 ± 1.96 x 0.01 /
    # sqrt(50) (the differences' standard error), where the cases' own spread (sd 0.29) would give ± 0.08
    a = np.linspace(0, 1, 50)
    b = a + 0.05 + np.where(np.arange(50) % 2, 0.01, -0.01)
    low, high = bootstrap_interval(a, b)
    half = 1.96 * 0.01 / math.sqrt(50)
    assert low == pytest.approx(0.05 - half, abs=0.3 * half) and high == pytest.approx(0.05 + half, abs=0.3 * half)
    assert bootstrap_interval(a, b) == (low, high)  # a fixed random state: the same interval every time
    # a large sample of normal differences: the normal-theory interval of its mean
    differences = np.random.default_rng(1).normal(0.0, 1.0, 400)
    low, high = bootstrap_interval(np.zeros(400), differences)
    sem = differences.std(ddof=1) / math.sqrt(400)
    assert low == pytest.approx(differences.mean() - 1.96 * sem, abs=0.1 * sem)
    assert high == pytest.approx(differences.mean() + 1.96 * sem, abs=0.1 * sem)
    assert all(math.isnan(v) for v in bootstrap_interval(np.array([0.5]), np.array([0.7])))

    comparison = paired_comparison(a, b)
    assert comparison["n"] == 50 and comparison["difference"] == pytest.approx(0.05)
    assert comparison["p"] < 1e-4  # every pair in the same direction


def test_the_noise_floor_is_the_largest_difference_between_repeats_and_marks_what_is_not_a_result():
    assert noise_floor([0.80, 0.83, 0.81]) == pytest.approx(0.03)
    assert noise_floor([0.80, math.nan, 0.81]) == pytest.approx(0.01)
    assert noise_floor([0.80]) is None and noise_floor([0.8, math.nan]) is None

    def marks(difference, low, high, floor):
        return within_noise({"difference": difference, "low": low, "high": high}, floor)

    assert marks(0.02, 0.01, 0.03, 0.03) == ["within the noise floor (0.0300)"]
    assert marks(-0.03, -0.05, -0.01, 0.03) == ["within the noise floor (0.0300)"]  # |Δ| = floor: inside
    assert marks(0.05, 0.01, 0.09, 0.03) == []
    assert marks(-0.05, -0.09, 0.001, 0.03) == ["interval covers 0"]
    assert marks(0.01, -0.01, 0.03, 0.03) == ["within the noise floor (0.0300)", "interval covers 0"]
    assert marks(0.05, 0.01, 0.09, None) == []  # without repeats only the interval decides
    assert marks(0.05, math.nan, math.nan, None) == ["interval covers 0"]  # no interval excludes nothing


def test_controls_and_seeds_name_their_runs_in_the_order_trainer_names_are_written():
    config = BenchmarkConfig(900, ["nnUNetTrainer", MAMBA, "nnUNetTrainerVMUNet_4ep4it"], epochs=1,
                             iterations_per_epoch=2, controls=True, repeats=2)
    assert list(config.methods()) == [
        "nnUNetTrainer", MAMBA, "nnUNetTrainerMambaUNet_Tiny_NoScan__nnUNetMambaUNetPlans",
        "nnUNetTrainerMambaUNet_Tiny_OneWay__nnUNetMambaUNetPlans", "nnUNetTrainerVMUNet_4ep4it",
        "nnUNetTrainerVMUNet_NoScan_4ep4it", "nnUNetTrainerVMUNet_OneWay_4ep4it"]
    runs = config.trained_as_by_seed()
    assert runs["nnUNetTrainer"] == {0: "nnUNetTrainer_1ep2it_seed0", 1: "nnUNetTrainer_1ep2it_seed1"}
    assert runs["nnUNetTrainerMambaUNet_Tiny_NoScan__nnUNetMambaUNetPlans"][1] == \
        "nnUNetTrainerMambaUNet_Tiny_NoScan_1ep2it_seed1"
    assert runs["nnUNetTrainerVMUNet_OneWay_4ep4it"][0] == "nnUNetTrainerVMUNet_OneWay_4ep4it_seed0"
    assert config.trained_as()[MAMBA] == "nnUNetTrainerMambaUNet_Tiny_1ep2it_seed0"  # the report's rows: seed 0
    # without --repeats the names stay unseeded (existing results folders stay valid); a seed given stays
    assert BenchmarkConfig(900, [MAMBA], epochs=1, iterations_per_epoch=2).trained_as() == {
        MAMBA: "nnUNetTrainerMambaUNet_Tiny_1ep2it"}
    assert run_trainer_name("nnUNetTrainerMambaUNet_seed3", 1, 2, None) == "nnUNetTrainerMambaUNet_1ep2it_seed3"
    control = Method.parse("nnUNetTrainerVMUNet_OneWay_4ep4it__nnUNetVMUNetPlans", "2d")
    assert (control.scan_control, control.has_scan, control.is_ours) == ("OneWay", False, True)
    assert control.parent() == Method("nnUNetTrainerVMUNet_4ep4it", "nnUNetVMUNetPlans", "2d")
    assert not Method.parse("nnUNetTrainer", "2d").has_scan
    with pytest.raises(TrainerNameError, match="--repeats names the seeds; give the trainer without it, "
                                               "nnUNetTrainerMambaUNet_2ep2it"):
        BenchmarkConfig(900, ["nnUNetTrainerMambaUNet_2ep2it_seed1"], repeats=2)
    with pytest.raises(SystemExit, match="--controls adds the scan controls itself"):
        BenchmarkConfig(900, [MAMBA, "nnUNetTrainerMambaUNet_Tiny_NoScan__nnUNetMambaUNetPlans"], controls=True)


def test_every_seed_of_every_method_trains_and_seed_0_is_what_the_report_and_the_selection_see(tmp_path):
    paths = NnUNetPaths.under(tmp_path)
    (paths.preprocessed / "Dataset900_X").mkdir(parents=True)
    config = BenchmarkConfig(900, ["nnUNetTrainer", MAMBA], folds=[0, 1], epochs=1, iterations_per_epoch=1,
                             controls=True, repeats=2, device="cpu")
    bench = Benchmark(config, paths)
    jobs = bench.training_jobs(make_executor("inline", tmp_path / "jobs"))
    trained = sorted({Model.from_identifier(job.key.split(".")[1]).trainer for job in jobs})
    assert len(jobs) == 4 * 2 * 2 and trained == sorted(
        f"{t}_1ep1it_seed{k}" for t in ("nnUNetTrainer", "nnUNetTrainerMambaUNet_Tiny",
                                        "nnUNetTrainerMambaUNet_Tiny_NoScan", "nnUNetTrainerMambaUNet_Tiny_OneWay")
        for k in (0, 1))
    assert {run.model.trainer for runs in bench.runs.values() for run in runs} == {
        trainer for trainer in trained if trainer.endswith("_seed0")}  # rows, costs, selection, test predictions
    assert len(bench.unfinished_runs()) == 16
    repeat = bench.seed_runs[MAMBA][1][0]
    repeat.validation_folder.mkdir(parents=True)
    (repeat.folder / "checkpoint_final.pth").write_bytes(b"")
    (repeat.validation_folder / "summary.json").write_text("{}")
    assert repeat not in bench.unfinished_runs() and len(bench.unfinished_runs()) == 15
    assert not any(bench.finished_runs().values())  # a finished repeat is no row of its own


@pytest.mark.parametrize("arguments, message", [
    (["--repeats", "0"], "--repeats 0: give the number of seeded repeats of every run, 1 or more (2 or more "
                         "measure the noise floor)."),
    (["--trainers", "nnUNetTrainer", "--controls"],
     "--controls trains the scan controls (NoScan, OneWay) of the Mamba-UNet and VM-UNet methods, and --trainers "
     "names none: add one, e.g. nnUNetTrainerMambaUNet__nnUNetMambaUNetPlans."),
    (["--trainers", "nnUNetTrainer", "nnUNetTrainerMambaUNet_seedx"],
     "nnUNetTrainerMambaUNet_seedx: the seed suffix _seedx is not a number; name the seed as an integer K >= 0, "
     "e.g. nnUNetTrainerMambaUNet_seed1."),
])
def test_bad_input_is_one_line_and_nothing_is_trained(arguments, message, tmp_path, monkeypatch, capsys):
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(variable, str(tmp_path / variable))
    with pytest.raises(SystemExit) as stopped:
        main(["benchmark", "-d", "900", "-device", "cpu", "--epochs", "1", "--iterations-per-epoch", "1",
              *arguments])
    assert stopped.value.code == message
    assert "\n" not in message and "fold 0" not in capsys.readouterr().out  # no run was even looked at
    assert not any(tmp_path.iterdir())  # nothing planned, trained or written


def _split(dice_of_case: dict[str, dict[str, float]]) -> dict:
    """A validation split of hand-made per-case metrics: every metric of a case set to its Dice."""
    split = {}
    for method, dice in dice_of_case.items():
        cases = {case: {"1": {}, CLASS_MEAN: {}} for case in dice}
        reference = np.zeros((1, 8, 8), np.uint8)
        reference[0, 2:6, 2:6] = 1
        template = with_class_mean(case_metrics(reference, reference, {"1": 1}, (1, 1, 1)))
        for case, value in dice.items():
            cases[case] = {c: {m: value for m in metrics} for c, metrics in template.items()}
        split[method] = {"labels": {"1": 1}, "cases": cases, "aggregate": aggregate(cases)}
    return split


def test_a_report_of_a_network_its_controls_and_their_repeats_opens_with_the_verdict(tmp_path):
    """The CNN baseline's two seeds differ by 0.01 on every case (the noise floor 0.01); Mamba beats it by 0.2,
    NoScan ties Mamba case for case, OneWay is 0.2 worse: the verdict, the controls' section, the cost of the
    scan, the repeats' table and the marks follow from these numbers."""
    cases = [f"c{i}" for i in range(8)]
    cnn = {c: 0.5 + 0.02 * i for i, c in enumerate(cases)}
    mamba = {c: v + 0.2 for c, v in cnn.items()}
    seeds = {"cnn": [cnn, {c: v + 0.01 for c, v in cnn.items()}],
             "mamba": [mamba, {c: v + 0.004 for c, v in mamba.items()}],
             "mamba_NoScan": [dict(mamba), {c: v + 0.002 for c, v in mamba.items()}],
             "mamba_OneWay": [dict(cnn), dict(cnn)]}
    cost = {"parameters": 2e6, "flops": 4e9, "train_seconds_per_iteration": 0.4, "peak_memory_mb": 200.0,
            "patch_size": [8, 8], "batch_size": 2}
    methods = {"cnn": {"trainer": "cnn", "plans": "nnUNetPlans", "configuration": "2d", "ours": False},
               "mamba": {"trainer": "mamba", "plans": "MambaPlans", "configuration": "2d", "ours": True},
               **{f"mamba_{c}": {"trainer": f"mamba_{c}", "plans": "MambaPlans", "configuration": "2d", "ours": True,
                                 "scan_control": c, "control_of": "mamba"} for c in ("NoScan", "OneWay")}}
    results = {"dataset": "Dataset900_X", "dataset_id": 900, "configuration": "2d", "folds": [0, 1], "device": "cpu",
               "trained_as": {n: f"{n}_1ep1it_seed0" for n in methods}, "methods": methods, "seeds": [0, 1],
               "fold_of_case": {c: i % 2 for i, c in enumerate(cases)},
               "splits": {"validation": _split({n: s[0] for n, s in seeds.items()})},
               "repeats": {n: {str(k): s for k, s in enumerate(by_seed)} for n, by_seed in seeds.items()},
               "costs": {"cnn": cost, "mamba": cost, "mamba_NoScan": {**cost, "parameters": 1.5e6, "flops": 3e9},
                         "mamba_OneWay": {**cost, "parameters": 1.8e6}},
               "curves": {}, "overlay_sources": {}}
    save_results(results, tmp_path)
    text = write_report(tmp_path).read_text()

    verdict = text[text.index("## Verdict"):text.index("|")]
    assert "- Best single method: mamba, CV Dice 0.7720 (mean of 2 repeats)." in verdict
    assert "- Noise floor (the baseline's repeat-to-repeat difference in CV Dice): 0.0100." in verdict
    assert ("- mamba vs the baseline cnn: Δ +0.2000 [+0.2000, +0.2000], p=0.0078 (n=8): outside the noise floor "
            "(0.0100), interval excludes 0.") in verdict
    assert ("- mamba vs its control mamba_NoScan: Δ +0.0000 [+0.0000, +0.0000], p=1.0000 (n=8): within the noise "
            "floor (0.0100); interval covers 0.") in verdict
    assert "- mamba vs its control mamba_OneWay: Δ +0.2000 [+0.2000, +0.2000], p=0.0078 (n=8): outside" in verdict
    assert "## Does the scan matter? mamba against its scan controls (Δ: what the scan adds)" in text
    assert ("| mamba − mamba_NoScan | +0.0000 | [+0.0000, +0.0000] | p=1.0000 (8) | within the noise floor (0.0100); "
            "interval covers 0 |") in text
    assert "| mamba − mamba_OneWay | +0.2000 | [+0.2000, +0.2000] | p=0.0078 (8) | – |" in text
    assert "| mamba_NoScan | 1.50 (0.75x) | 3.00 (0.75x) | 0.400 (1.00x) | 200 (1.00x) |" in text
    assert "| mamba_OneWay − cnn | +0.0000 | [+0.0000, +0.0000] | p=1.0000 (8) | within the noise floor" in text
    # the repeats: per fold and over the cross-validation, mean ± sd (ddof 1) over the seeds, each seed's CV
    fold0 = [np.mean([s[c] for c in cases[::2]]) for s in seeds["mamba"]]
    cv = [np.mean(list(s.values())) for s in seeds["mamba"]]
    assert (f"| mamba | {np.mean(fold0):.4f} ± {np.std(fold0, ddof=1):.4f} (n=2) | ") in text
    assert f" | {np.mean(cv):.4f} ± {np.std(cv, ddof=1):.4f} (n=2) | 0: {cv[0]:.4f}, 1: {cv[1]:.4f} |" in text
    assert "Noise floor 0.0100: the largest difference in cross-validation Dice between two seeds of the baseline cnn" \
        in text
    html = (tmp_path / "report.html").read_text()
    assert html.index("<h2>Verdict</h2><ul><li>Best single method: mamba") < html.index("<table>")


def test_a_method_without_repeats_has_no_noise_floor_and_only_its_interval_decides(tmp_path):
    results = {"dataset": "Dataset900_X", "dataset_id": 900, "configuration": "2d", "folds": [0], "device": "cpu",
               "trained_as": {"cnn": "cnn_1ep1it", "mamba": "mamba_1ep1it"},
               "methods": {"cnn": {"trainer": "cnn", "plans": "nnUNetPlans", "configuration": "2d", "ours": False},
                           "mamba": {"trainer": "mamba", "plans": "MambaPlans", "configuration": "2d", "ours": True}},
               "splits": {"validation": _split({"cnn": {"a": 0.5, "b": 0.7, "c": 0.6},
                                                "mamba": {"a": 0.6, "b": 0.6, "c": 0.65}})},
               "costs": {}, "curves": {}, "overlay_sources": {}}
    save_results(results, tmp_path)
    text = write_report(tmp_path).read_text()
    assert "- No noise floor (it needs --repeats 2 or more)." in text
    assert "- mamba vs the baseline cnn: Δ +0.0167 [" in text and "(n=3): interval covers 0." in text
    assert "Seeded repeats" not in text and "Does the scan matter?" not in text

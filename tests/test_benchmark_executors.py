"""The benchmark on an executor: trainings and cost measurements as jobs on a real one-node SLURM, submitted with
--no-wait and waited for by the same command run again, scored and reported run for run and case for case; a job
that fails (on the local executor) is reported with its log and the others kept, --report-only reports it without
submitting anything, and running the same command again resubmits only that job, which continues with --c. The
executors' own contract (inline, local and slurm run the same jobs alike) is tested with trivial jobs in
test_executors.py."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from nnunetv2_mamba.cli import main
from helpers import DATASET, nnunetv2_mamba

TRAINERS = ["nnUNetTrainer", "nnUNetTrainerMambaUNet_Tiny"]
BUDGET = ["--epochs", "1", "--iterations-per-epoch", "1", "-device", "cpu"]
FLAKY = textwrap.dedent('''
    """A CNN trainer that checkpoints every epoch and stops at the start of epoch 1 while $FLAKY_MARKER exists."""
    import os

    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


    class nnUNetTrainerFlaky(nnUNetTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.save_every = 1

        def on_epoch_start(self):
            if self.current_epoch == 1 and os.path.exists(os.environ["FLAKY_MARKER"]):
                raise RuntimeError("flaky: stopped at the start of epoch 1")
            super().on_epoch_start()
''')


def benchmark(env: dict, report, *arguments: str, succeed: bool = True) -> str:
    result = nnunetv2_mamba(env, "benchmark", "-d", "900", *BUDGET, "-o", str(report), *arguments, timeout=900)
    assert (result.returncode == 0) == succeed, result.stdout[-4000:]
    return result.stdout


def in_results(env: dict, results) -> dict:
    """``env`` with its own nnUNet_results (the same preprocessed data and splits, runs of their own) and the test
    session's SLURM_CONF, exported by the slurm fixture after ``env`` was made."""
    return {**env, "nnUNet_results": str(results), **{k: os.environ[k] for k in ("SLURM_CONF",) if k in os.environ}}


def test_a_benchmark_run_as_slurm_jobs_is_reattached_scored_and_reported(slurm, planned_phantom, tmp_path):
    env = in_results(planned_phantom["env"], tmp_path / "results")
    report = tmp_path / "report"
    arguments = ["--trainers", *TRAINERS, "--folds", "0", "1", "--executor", "slurm", "--slurm-cpus", "1",
                 "--slurm-time-min", "10"]
    submitted = benchmark(env, report, *arguments, "--no-wait")
    assert "[benchmark] submitted; run the same command again" in submitted
    first = json.loads((report / "jobs" / "jobs.json").read_text())
    output = benchmark(env, report, *arguments)  # waits for the same jobs, then reports
    jobs = json.loads((report / "jobs" / "jobs.json").read_text())
    assert {key: job["job_id"] for key, job in first.items() if job["job_id"]} == {
        key: jobs[key]["job_id"] for key, job in first.items() if job["job_id"]}  # re-attached, not resubmitted
    # every compute command is a job: the trainings and each method's cost measurement
    assert sorted(jobs) == sorted([f"train.{t}_1ep1it__nnUNetPlans__2d.fold{f}" for t in TRAINERS for f in (0, 1)]
                                  + [f"cost.{t}" for t in TRAINERS])
    assert all(job["state"] == "done" and job["job_id"] for job in jobs.values()), jobs
    scripts = list((report / "jobs").glob("*/*_submission.sh"))
    assert len(scripts) == 6 and all("#SBATCH --cpus-per-task=1" in s.read_text() for s in scripts)
    assert "report: " in output

    saved = json.loads((report / "results.json").read_text())
    assert list(saved["methods"]) == TRAINERS and saved["folds"] == [0, 1] and not saved["missing_runs"]
    assert saved["trained_as"] == {t: f"{t}_1ep1it" for t in TRAINERS}
    splits = json.loads((planned_phantom["root"] / "preprocessed" / DATASET / "splits_final.json").read_text())
    cross_validation = sorted(case for fold in (0, 1) for case in splits[fold]["val"])
    for trainer in TRAINERS:  # every run scored on its fold's cases, and its setup read from its own log
        assert sorted(saved["splits"]["validation"][trainer]["cases"]) == cross_validation
        assert sorted(saved["curves"][trainer]) == ["0", "1"]
        assert all(curve["setup"]["trainer"] == f"{trainer}_1ep1it" for curve in saved["curves"][trainer].values())


def test_a_failed_job_is_reported_and_only_it_is_resubmitted_and_continued(planned_phantom, tmp_path):
    (tmp_path / "trainers").mkdir()
    (tmp_path / "trainers" / "flaky_trainer.py").write_text(FLAKY)
    marker = tmp_path / "marker"
    marker.touch()
    env = {**in_results(planned_phantom["env"], tmp_path / "results"), "FLAKY_MARKER": str(marker),
           "nnUNet_extTrainer": str(tmp_path / "trainers")}
    arguments = ["--trainers", "nnUNetTrainer", "nnUNetTrainerFlaky_2ep1it", "--executor", "local"]
    report = tmp_path / "report"
    flaky = "train.nnUNetTrainerFlaky_2ep1it__nnUNetPlans__2d.fold0"
    fold = tmp_path / "results" / DATASET / "nnUNetTrainerFlaky_2ep1it__nnUNetPlans__2d" / "fold_0"

    failed = benchmark(env, report, *arguments, succeed=False)
    assert f"{flaky} failed (log: {report / 'logs'}" in failed and "flaky: stopped at the start of epoch 1" in failed
    assert "Run the same command again: finished runs are kept, failed ones continue." in failed
    saved = json.loads((report / "results.json").read_text())
    assert list(saved["splits"]["validation"]) == ["nnUNetTrainer"]  # the other job's results are kept
    assert saved["failures"][flaky]["log"].endswith(f"{flaky}.log")
    assert f"{flaky}: failed, log " in (report / "report.md").read_text()
    assert (fold / "checkpoint_latest.pth").is_file() and not (fold / "checkpoint_final.pth").exists()
    first = json.loads((report / "jobs" / "jobs.json").read_text())
    (report / "report.md").unlink()
    reported = benchmark(env, report, *arguments, "--report-only", succeed=False)  # reports, submits nothing
    assert f"{flaky} failed (log: " in reported and (report / "report.md").is_file()
    assert json.loads((report / "jobs" / "jobs.json").read_text()) == first

    marker.unlink()
    again = benchmark(env, report, *arguments)
    assert "nnUNetTrainerFlaky_2ep1it__nnUNetPlans__2d fold 0: continuing (--c)" in again
    assert "nnUNetTrainer_1ep1it__nnUNetPlans__2d fold 0: finished already" in again
    jobs = json.loads((report / "jobs" / "jobs.json").read_text())
    cnn = "train.nnUNetTrainer_1ep1it__nnUNetPlans__2d.fold0"
    assert jobs[cnn] == first[cnn]  # not resubmitted
    assert jobs[flaky]["command"][-1] == "--c" and jobs[flaky]["state"] == "done"
    assert (fold / "checkpoint_final.pth").is_file()
    assert list(json.loads((report / "results.json").read_text())["splits"]["validation"]) == [
        "nnUNetTrainer", "nnUNetTrainerFlaky_2ep1it"]


def test_bad_executor_settings_stop_the_benchmark_before_anything_runs(benchmark_input_folders, tmp_path,
                                                                      monkeypatch):
    def refused(*arguments: str) -> str:
        with pytest.raises(SystemExit) as stopped:
            main(["benchmark", "-d", "900", *BUDGET, "-o", str(tmp_path / "report"), "--trainers", "nnUNetTrainer",
                  *arguments])
        return str(stopped.value.code)

    settings = tmp_path / "cluster.toml"
    settings.write_text('partition = "gpu"\ngpu = 1\n')
    assert "unknown key(s) gpu" in refused("--executor", "slurm", "--executor-settings", str(settings))
    with monkeypatch.context() as without_sbatch:
        without_sbatch.setenv("PATH", os.path.dirname(sys.executable))
        assert "no 'sbatch' on PATH" in refused("--executor", "slurm")
    inline = refused("--no-wait")
    assert "--no-wait leaves jobs running elsewhere: use it with --executor local or slurm." in inline
    assert not (benchmark_input_folders / "results").exists()
    assert not (tmp_path / "report" / "jobs" / "jobs.json").exists()


def test_gpu_jobs_from_a_gpu_less_host_ask_slurm_for_a_gpu_and_decide_their_device_on_the_node(
        slurm, planned_phantom, tmp_path):
    """The one-node SLURM has two GPUs in its configuration and no CUDA behind them. From this host without a GPU,
    -device auto with --slurm-gpus 1: every training job asks SLURM for a GPU, carries no -device cpu and none of
    the CPU settings, and the ResEnc preset is not refused on this host's grounds; on the node each job fails with
    the one clear "no GPU in this job" error; run again with -device cpu, the job runs on the node's CPU and the
    Runs table says where."""
    import pickle

    env = in_results(planned_phantom["env"], tmp_path / "results")
    report = tmp_path / "report"
    trainers = ["nnUNetTrainer", "nnUNetTrainer__nnUNetResEncUNetMPlans"]
    on_slurm = ["-d", "900", "--epochs", "1", "--iterations-per-epoch", "1", "-o", str(report), "--executor", "slurm",
                "--slurm-gpus", "1", "--slurm-cpus", "1", "--slurm-time-min", "10"]

    def benchmark_(*arguments: str) -> subprocess.CompletedProcess:
        return nnunetv2_mamba(env, "benchmark", *on_slurm, *arguments, timeout=900)

    submitted = benchmark_("--trainers", *trainers, "--no-wait")
    assert submitted.returncode == 0, submitted.stdout[-4000:]
    assert "[benchmark] on CPU" not in submitted.stdout and "plans batch size" not in submitted.stdout
    jobs = json.loads((report / "jobs" / "jobs.json").read_text())
    assert sorted(jobs) == [f"train.nnUNetTrainer_1ep1it__{plans}__2d.fold0"
                            for plans in ("nnUNetPlans", "nnUNetResEncUNetMPlans")]
    for key, job in jobs.items():
        device = job["command"][job["command"].index("-device") + 1]
        assert device == "{device}" and job["command"][job["command"].index("--device") + 1] == "auto", job
        script = next((report / "jobs" / key).glob("*_submission.sh")).read_text()
        assert "#SBATCH --gpus-per-node=1" in script
        with next((report / "jobs" / key).glob("*_submitted.pkl")).open("rb") as handle:
            job_env = pickle.load(handle).function.env
        assert not {"nnUNet_n_proc_DA", "OMP_WAIT_POLICY", "nnUNet_def_n_proc"} & (set(job_env) - set(env)), job_env
        assert job_env.get("nnUNet_n_proc_DA") == env.get("nnUNet_n_proc_DA")

    waited = benchmark_("--trainers", *trainers)  # waits for the same jobs: none has a GPU on this node
    assert waited.returncode != 0 and "no run has finished:" in waited.stdout
    assert waited.stdout.count("no GPU in this job: it asked for 1 GPU(s) but torch sees no CUDA device") == 2
    assert "or run on the CPU on purpose with -device cpu" in waited.stdout
    where = json.loads((report / "logs" / "train.nnUNetTrainer_1ep1it__nnUNetPlans__2d.fold0.where.json")
                       .read_text())
    assert where["device"] is None and where["gpus_asked"] == 1 and where["host"]

    on_cpu = benchmark_("--trainers", "nnUNetTrainer", "-device", "cpu")  # asked for explicitly: runs on the CPU
    assert on_cpu.returncode == 0, on_cpu.stdout[-4000:]
    key = "train.nnUNetTrainer_1ep1it__nnUNetPlans__2d.fold0"
    script = sorted((report / "jobs" / key).glob("*_submission.sh"))[-1].read_text()
    assert "--gpus-per-node" not in script
    saved = json.loads((report / "results.json").read_text())
    ran = saved["where"]["nnUNetTrainer"]["0"]
    assert ran["device"] == "cpu" and ran["cpu_settings"]["nnUNet_n_proc_DA"] == "0"
    assert f"| {ran['host']}, cpu |" in (report / "report.md").read_text()

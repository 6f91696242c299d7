"""The benchmark's executors (nnunetv2_mamba.comparison.execution) with real processes: inline, submitit's local
executor, and a real one-node SLURM (scripts/slurm_single_node.sh, started once per session). Every wait is
bounded (a SIGALRM deadline around each run() that waits, a timeout on each subprocess)."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nnunetv2_mamba.comparison.execution import (ExecutorError, ExecutorSettings, Job, SettingsError,
                                                 add_executor_arguments, executor_from_arguments, make_executor)
from nnunetv2_mamba.comparison.execution.settings import settings_from_arguments

REPO = Path(__file__).resolve().parents[1]
JOB_TIMEOUT_S = 180


def settings_for(kind: str, **overrides) -> ExecutorSettings:
    base = {"slurm": {"partition": "debug"}, "local": {"max_parallel": 2}}.get(kind, {})
    return ExecutorSettings(**{**base, **overrides})


def python_job(tmp_path: Path, key: str, code: str, **env) -> Job:
    """A job running `code` with $OUT = a file of its own and the variables `env`."""
    environment = {"PATH": os.environ["PATH"], "OUT": str(tmp_path / f"{key}.out"), **env}
    return Job(key, (sys.executable, "-c", code), environment, tmp_path / "logs" / f"{key}.log")


@contextlib.contextmanager
def deadline(seconds=JOB_TIMEOUT_S):
    """Fail the test if the block (e.g. a run() that waits for its jobs) takes longer than `seconds`."""
    def expire(*_):
        raise TimeoutError(f"still waiting after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_and_wait(executor, jobs, seconds=JOB_TIMEOUT_S):
    with deadline(seconds):
        return executor.run(jobs)


@pytest.fixture(params=["inline", "local", "slurm"])
def kind(request):
    if request.param == "slurm":
        request.getfixturevalue("slurm")
    return request.param


WRITE_BACK = "import os; print('hello from', os.environ['MARK']); open(os.environ['OUT'], 'w').write(os.environ['MARK'])"


def test_jobs_run_with_their_environment_and_log(kind, tmp_path):
    jobs = [python_job(tmp_path, f"ok{index}", WRITE_BACK, MARK=f"mark-{index}") for index in range(3)]
    settings = settings_for(kind)
    if kind == "slurm":
        settings = settings_for(kind, cpus=1, mem_gb=0.5, time_min=10, extra=("--comment=nnunet-test",))
    executor = make_executor(kind, tmp_path / "jobs", settings)
    outcomes = run_and_wait(executor, jobs)

    for index, job in enumerate(jobs):
        assert outcomes[job.key].state == "done", outcomes[job.key]
        assert (tmp_path / f"ok{index}.out").read_text() == f"mark-{index}"
        assert f"hello from mark-{index}" in job.log_file.read_text()
    recorded = json.loads((tmp_path / "jobs" / "jobs.json").read_text())
    assert {key: record["state"] for key, record in recorded.items()} == {job.key: "done" for job in jobs}
    if kind == "inline":
        assert all(outcome.job_id is None for outcome in outcomes.values())
    else:
        assert all(outcome.job_id for outcome in outcomes.values())
    if kind == "slurm":  # submitit wrote the submission script, with the settings, into the job's folder
        (script,) = (tmp_path / "jobs" / "ok0").glob("*_submission.sh")
        for line in ("--comment=nnunet-test", "--partition=debug", "--cpus-per-task=1", "--mem=512M", "--time=10"):
            assert f"#SBATCH {line}\n" in script.read_text()


def test_a_failing_job_reports_its_exit_code_and_log_tail(kind, tmp_path):
    failing = python_job(tmp_path, "bad", "import sys; print('about to fail'); sys.exit(3)")
    fine = python_job(tmp_path, "good", WRITE_BACK, MARK="kept")
    executor = make_executor(kind, tmp_path / "jobs", settings_for(kind))
    outcomes = run_and_wait(executor, [failing, fine])

    assert outcomes["bad"].state == "failed"
    assert "exit code 3" in outcomes["bad"].error and "about to fail" in outcomes["bad"].error
    assert outcomes["good"].state == "done" and (tmp_path / "good.out").read_text() == "kept"
    assert make_executor(kind, tmp_path / "jobs", settings_for(kind)).poll(["bad", "good"]) == outcomes


def test_local_pins_each_gpu_job_to_its_own_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")  # the GPUs this process may use: one job on each
    code = "import os; open(os.environ['OUT'], 'w').write(os.environ['CUDA_VISIBLE_DEVICES'])"
    jobs = [dataclasses.replace(python_job(tmp_path, f"gpu{index}", code), gpus=1) for index in range(2)]
    outcomes = run_and_wait(make_executor("local", tmp_path / "jobs"), jobs)

    assert all(outcome.state == "done" for outcome in outcomes.values()), outcomes
    assert sorted((tmp_path / f"gpu{index}.out").read_text() for index in range(2)) == ["5", "7"]


@pytest.mark.parametrize("kind", ["local", "slurm"])
def test_no_wait_then_a_rerun_reattaches_instead_of_resubmitting(kind, tmp_path, request):
    """A first process submits with wait=False and exits; a second run() with the same jobs re-attaches."""
    if kind == "slurm":
        request.getfixturevalue("slurm")
    jobs = [python_job(tmp_path, f"slow{index}", "import time; time.sleep(8); print('slept')") for index in range(2)]
    submit = (f"import pickle, sys; from nnunetv2_mamba.comparison.execution import make_executor\n"
              f"jobs, settings = pickle.loads(sys.stdin.buffer.read())\n"
              f"make_executor({kind!r}, {str(tmp_path / 'jobs')!r}, settings).run(jobs, wait=False)\n")
    subprocess.run([sys.executable, "-c", submit], input=pickle.dumps((jobs, settings_for(kind))), check=True,
                   timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    first = json.loads((tmp_path / "jobs" / "jobs.json").read_text())
    assert {record["state"] for record in first.values()} <= {"pending", "running"}

    executor = make_executor(kind, tmp_path / "jobs", settings_for(kind))
    again = executor.run(jobs, wait=False)
    assert {key: outcome.job_id for key, outcome in again.items()} == {key: first[key]["job_id"] for key in first}
    assert {outcome.state for outcome in executor.poll(first).values()} <= {"pending", "running", "done"}

    ended = run_and_wait(executor, jobs)  # waits for the jobs the first process submitted
    assert {key: outcome.job_id for key, outcome in ended.items()} == {key: first[key]["job_id"] for key in first}
    assert all(outcome.state == "done" for outcome in ended.values()), ended
    assert all(job.log_file.read_text().count("slept") == 1 for job in jobs)  # each ran once


def test_a_job_past_its_slurm_time_limit_fails_and_only_it_is_resubmitted(slurm, tmp_path):
    quick = python_job(tmp_path, "quick", WRITE_BACK, MARK="quick")
    sleeper = python_job(tmp_path, "sleeper", "import time; print('sleeping', flush=True); time.sleep(600)")
    executor = make_executor("slurm", tmp_path / "jobs", settings_for("slurm", time_min=1))
    outcomes = run_and_wait(executor, [quick, sleeper], seconds=240)

    assert outcomes["quick"].state == "done"
    assert outcomes["sleeper"].state == "failed"
    assert "TIMEOUT" in outcomes["sleeper"].error and "sleeping" in outcomes["sleeper"].error

    rerun = make_executor("slurm", tmp_path / "jobs", settings_for("slurm", time_min=1))
    resubmitted = rerun.run([sleeper], wait=False)  # the harness asks again only for what did not finish
    assert rerun.poll(["quick"])["quick"] == outcomes["quick"]  # the finished job's record is kept as it was
    assert resubmitted["sleeper"].job_id != outcomes["sleeper"].job_id
    assert resubmitted["sleeper"].state in ("pending", "running")
    subprocess.run(["scancel", resubmitted["sleeper"].job_id], check=True, timeout=60)
    cancelled = run_and_wait(executor, [sleeper], seconds=120)["sleeper"]  # an executor made before the rerun
    assert cancelled.state == "failed" and "CANCELLED" in cancelled.error


def test_an_unknown_partition_is_refused_before_anything_is_submitted(slurm, tmp_path):
    with pytest.raises(ExecutorError, match="no partition 'nosuch'.*debug"):
        make_executor("slurm", tmp_path / "jobs", ExecutorSettings(partition="nosuch"))
    assert not (tmp_path / "jobs" / "jobs.json").exists()


def test_missing_submitit_is_refused_before_anything_is_submitted(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` raises ImportError
    for kind in ("local", "slurm"):
        with pytest.raises(ExecutorError, match="pip install 'submitit"):
            make_executor(kind, tmp_path / "jobs")
    assert not (tmp_path / "jobs").exists()


def test_no_sbatch_on_path_is_refused_before_anything_is_submitted(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutorError, match="no 'sbatch' on PATH"):
        make_executor("slurm", tmp_path / "jobs")
    assert not (tmp_path / "jobs").exists()


def parse(argv):
    parser = argparse.ArgumentParser()
    add_executor_arguments(parser)
    return parser.parse_args(argv)


def test_flags_override_the_settings_file(tmp_path):
    settings_file = tmp_path / "cluster.toml"
    settings_file.write_text('partition = "gpu"\ngpus = 1\ncpus = 8\nmem_gb = 64\ntime_min = 2880\n'
                             'account = "lab"\nextra = ["--qos=high"]\n')
    args = parse(["--executor", "slurm", "--executor-settings", str(settings_file), "--slurm-time-min", "60",
                  "--slurm-extra=--qos=low", "--slurm-extra", "#SBATCH --exclusive", "--no-wait"])
    assert args.no_wait and args.executor == "slurm"
    assert settings_from_arguments(args) == ExecutorSettings(partition="gpu", gpus=1, cpus=8, mem_gb=64, time_min=60,
                                                             account="lab", extra=("--qos=low", "#SBATCH --exclusive"))
    assert type(executor_from_arguments(parse([]), tmp_path / "jobs")).__name__ == "InlineExecutor"


@pytest.mark.parametrize("text, message", [
    ('partition = "gpu"\nqueue = "x"\n', "unknown key.*queue"),
    ("gpus = -1\n", "gpus = -1: expected an integer >= 0"),
    ('extra = ["qos=high"]\n', "'--name=value'"),
    ('extra = "--qos=high"\n', "extra must be a list"),
    ("partition = \n", "executor settings"),
])
def test_a_bad_settings_file_gets_one_clear_error(tmp_path, text, message):
    settings_file = tmp_path / "cluster.toml"
    settings_file.write_text(text)
    with pytest.raises(SettingsError, match=message):
        executor_from_arguments(parse(["--executor", "slurm", "--executor-settings", str(settings_file)]),
                                tmp_path / "jobs")
    assert not (tmp_path / "jobs").exists()

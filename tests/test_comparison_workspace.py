"""nnU-Net's workspace as the package sets it up (folders, trainers, the planner's nnUNet_n_proc_DA), the CPU
settings a job applies where it runs on the CPU, and the device a job decides where it runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnunetv2_mamba.comparison.job_device import DEVICE, NoGPUError, decide_device, read_where, wrap
from nnunetv2_mamba.comparison.workspace import CPU_SETTINGS, NnUNetPaths, cpu_settings, nnunet_environment
from nnunetv2_mamba.training.ext_trainer_folder import trainers_folder

PATHS = NnUNetPaths(Path("/raw"), Path("/preprocessed"), Path("/results"))


def test_cpu_runs_get_every_cpu_setting_and_say_which(monkeypatch):
    for variable in CPU_SETTINGS:
        monkeypatch.delenv(variable, raising=False)
    env = nnunet_environment(PATHS)
    applied = cpu_settings(env)
    assert applied == {variable: value for variable, (value, _) in CPU_SETTINGS.items()}
    assert env["nnUNet_raw"] == "/raw"


def test_a_users_settings_are_kept_and_nothing_is_changed_off_cpu(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("nnUNet_def_n_proc", "6")
    monkeypatch.setenv("nnUNet_n_proc_DA", "4")
    env = nnunet_environment(PATHS)
    assert cpu_settings(env) == {"nnUNet_n_proc_DA": "0"}  # data-augmentation workers are always off on CPU
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["nnUNet_def_n_proc"] == "6"
    assert env["nnUNet_n_proc_DA"] == "4"  # off the CPU (decided in the job) the user's value stays


def test_the_workspace_puts_given_trainers_then_ours_then_the_users_and_planning_drops_n_proc_da(tmp_path):
    base = {"nnUNet_n_proc_DA": "0", "nnUNet_extTrainer": "/users"}
    env = nnunet_environment(NnUNetPaths.under(tmp_path), trainer_folders=[tmp_path / "mine"], base=base)
    assert env["nnUNet_extTrainer"].split(os.pathsep) == [str(tmp_path / "mine"), str(trainers_folder()), "/users"]
    assert env["nnUNet_results"] == str(tmp_path / "results") and env["nnUNet_n_proc_DA"] == "0"
    assert "nnUNet_n_proc_DA" not in nnunet_environment(PATHS, planning=True, base=base)  # 0 crashes the planner


def test_a_job_decides_its_device_where_it_runs():
    assert decide_device("auto", gpus=0, cuda_available=False) == "cpu"
    assert decide_device("auto", gpus=1, cuda_available=True) == "cuda"
    assert decide_device("auto", gpus=0, cuda_available=True) == "cpu"  # no GPU asked for: not the one it sees
    assert decide_device("cpu", gpus=1, cuda_available=True) == "cpu"  # asked for explicitly
    with pytest.raises(NoGPUError, match="no GPU in this job: it asked for 1 GPU"):
        decide_device("auto", gpus=1, cuda_available=False)
    with pytest.raises(NoGPUError, match="was given -device cuda.*-device cpu"):
        decide_device("cuda", gpus=0, cuda_available=False)


def test_a_job_without_its_gpu_fails_with_the_reason_and_records_where_it_ran(tmp_path):
    where = tmp_path / "where.json"
    command = wrap([sys.executable, "-c", "import sys; print('ran on', sys.argv[1])", DEVICE], "auto", 1, where)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    failed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert failed.returncode != 0 and "no GPU in this job" in failed.stderr and "ran on" not in failed.stdout
    record = read_where(where)
    assert record["device"] is None and "no GPU in this job" in record["error"] and record["gpus_asked"] == 1
    command = wrap([sys.executable, "-c", "import os, sys; print('ran on', sys.argv[1], os.environ['nnUNet_n_proc_DA'])",
                    DEVICE], "auto", 0, where)
    ran = subprocess.run(command, env=env, capture_output=True, text=True)
    assert ran.returncode == 0 and "ran on cpu 0" in ran.stdout, ran.stderr
    assert "[job] on CPU: nnUNet_n_proc_DA=0" in ran.stdout
    assert json.loads(where.read_text())["cpu_settings"]["nnUNet_n_proc_DA"] == "0"

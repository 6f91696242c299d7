"""The environment the benchmark gives nnU-Net's commands: what it sets on CPU, and what it leaves to the user."""
from __future__ import annotations

from pathlib import Path

from nnunetv2_mamba.comparison.workspace import CPU_SETTINGS, NnUNetPaths, subprocess_environment

PATHS = NnUNetPaths(Path("/raw"), Path("/preprocessed"), Path("/results"))


def test_cpu_runs_get_every_cpu_setting_and_say_which(monkeypatch):
    for variable in CPU_SETTINGS:
        monkeypatch.delenv(variable, raising=False)
    env, applied = subprocess_environment(PATHS, "cpu")
    assert applied == {variable: value for variable, (value, _) in CPU_SETTINGS.items()}
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["nnUNet_n_proc_DA"] == "0"
    assert env["nnUNet_raw"] == "/raw"


def test_a_users_settings_are_kept_and_nothing_is_changed_off_cpu(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("nnUNet_def_n_proc", "6")
    monkeypatch.setenv("nnUNet_n_proc_DA", "4")
    env, applied = subprocess_environment(PATHS, "cpu")
    assert applied == {"nnUNet_n_proc_DA": "0"}  # data-augmentation workers are always off on CPU
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["nnUNet_def_n_proc"] == "6"
    env, applied = subprocess_environment(PATHS, "cuda")
    assert applied == {} and env["nnUNet_n_proc_DA"] == "4"

"""nnU-Net's workspace: its three folders (``NnUNetPaths``), the environment its nnUNetv2_* commands run in
(``nnunet_environment``: for the package, the benchmarks and the tests) and what the CPU settings change there."""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from nnunetv2_mamba.training.ext_trainer_folder import trainers_folder

#: what the benchmark sets for nnU-Net's subprocesses on CPU: {variable: (value, why)}; printed and reported
CPU_SETTINGS = {
    "nnUNet_n_proc_DA": ("0", "data augmentation runs in the training process, no worker processes: faster on a "
                              "few CPU cores; replaces any value you set"),
    "nnUNet_def_n_proc": ("2", "export workers, each importing torch; nnU-Net's default is 8, a value you set is "
                               "kept"),
    "OMP_WAIT_POLICY": ("PASSIVE", "idle OpenMP threads sleep instead of spinning, so a network of many small "
                                   "operations does not stall when other work shares the CPU; a value you set is "
                                   "kept"),
}


@dataclass(frozen=True)
class NnUNetPaths:
    """The three nnU-Net roots (``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``)."""
    raw: Path
    preprocessed: Path
    results: Path

    @classmethod
    def under(cls, root: Path) -> "NnUNetPaths":
        """``root/raw``, ``root/preprocessed``, ``root/results``."""
        return cls(Path(root) / "raw", Path(root) / "preprocessed", Path(root) / "results")

    @classmethod
    def from_environment(cls) -> "NnUNetPaths":
        missing = [n for n in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results") if not os.environ.get(n)]
        if missing:
            raise SystemExit(f"set {', '.join(missing)} (nnU-Net's folders) before running the benchmark.")
        return cls(Path(os.environ["nnUNet_raw"]), Path(os.environ["nnUNet_preprocessed"]),
                   Path(os.environ["nnUNet_results"]))

    def dataset_name(self, dataset_id: int) -> str:
        """``DatasetXXX_Name`` of a preprocessed dataset; one clear error when it has not been preprocessed."""
        found = sorted(self.preprocessed.glob(f"Dataset{dataset_id:03d}_*"))
        if not found:
            raise SystemExit(f"no Dataset{dataset_id:03d}_* in {self.preprocessed}; run "
                             f"nnUNetv2_plan_and_preprocess -d {dataset_id} -c 2d first.")
        return found[0].name


def nnunet_command(name: str) -> str:
    """Path of nnU-Net's console script ``name`` installed beside this Python (so an unactivated virtualenv
    works), else ``name`` as found on PATH; one clear error when neither exists."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    if shutil.which(name):
        return name
    raise SystemExit(f"{name} not found beside {sys.executable} or on PATH; install nnunetv2 into this environment.")


def nnunet_environment(paths: NnUNetPaths, *, planning: bool = False, trainer_folders: Sequence[Path] = (),
                       base: Mapping[str, str] | None = None) -> dict:
    """The environment of an nnUNetv2_* command: ``base`` (default os.environ) with nnU-Net's three folders and
    ``trainer_folders``, then our trainers, then the user's in ``nnUNet_extTrainer``. ``planning``: without
    ``nnUNet_n_proc_DA`` (the planner calls torch.set_num_threads with it and fails on 0)."""
    env = dict(os.environ if base is None else base, nnUNet_raw=str(paths.raw),
               nnUNet_preprocessed=str(paths.preprocessed), nnUNet_results=str(paths.results))
    if planning:
        env.pop("nnUNet_n_proc_DA", None)
    ext = [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    env["nnUNet_extTrainer"] = os.pathsep.join(dict.fromkeys([*map(str, trainer_folders), str(trainers_folder()),
                                                              *ext]))
    return env


def cpu_settings(env: Mapping[str, str]) -> dict[str, str]:
    """{variable: value} of what the CPU settings change in ``env`` (``CPU_SETTINGS``): ``nnUNet_n_proc_DA=0`` always,
    ``nnUNet_def_n_proc`` and ``OMP_WAIT_POLICY`` unless set. Decided where the command runs, for the device it
    gets there."""
    applied = {"nnUNet_n_proc_DA": CPU_SETTINGS["nnUNet_n_proc_DA"][0]}
    for variable in ("nnUNet_def_n_proc", "OMP_WAIT_POLICY"):
        if variable not in env:
            applied[variable] = CPU_SETTINGS[variable][0]
    return applied

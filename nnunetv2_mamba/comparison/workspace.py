"""Where the benchmark's nnU-Net folders are, and the environment its nnUNetv2_* subprocesses run in."""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_mamba.training.search_path import trainers_folder

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


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; other values pass through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def nnunet_environment(paths: NnUNetPaths) -> dict:
    """os.environ plus nnU-Net's folders and our trainers first in ``nnUNet_extTrainer``; without
    ``nnUNet_n_proc_DA`` (the planner calls torch.set_num_threads with it and fails on 0)."""
    env = dict(os.environ, nnUNet_raw=str(paths.raw), nnUNet_preprocessed=str(paths.preprocessed),
               nnUNet_results=str(paths.results))
    env.pop("nnUNet_n_proc_DA", None)
    ext = [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    env["nnUNet_extTrainer"] = os.pathsep.join(dict.fromkeys([str(trainers_folder()), *ext]))
    return env


def subprocess_environment(paths: NnUNetPaths, device: str) -> tuple[dict, dict[str, str]]:
    """``nnunet_environment`` for training/prediction, and {variable: value} of what the CPU settings changed:
    on CPU ``nnUNet_n_proc_DA=0`` and, unless set, ``nnUNet_def_n_proc=2`` and ``OMP_WAIT_POLICY=PASSIVE``
    (``CPU_SETTINGS``). A user's ``nnUNet_n_proc_DA`` is kept off CPU."""
    env = nnunet_environment(paths)
    if "nnUNet_n_proc_DA" in os.environ:
        env["nnUNet_n_proc_DA"] = os.environ["nnUNet_n_proc_DA"]
    applied = {}
    if device == "cpu":
        applied["nnUNet_n_proc_DA"] = CPU_SETTINGS["nnUNet_n_proc_DA"][0]
        for variable in ("nnUNet_def_n_proc", "OMP_WAIT_POLICY"):
            if variable not in env:
                applied[variable] = CPU_SETTINGS[variable][0]
    env.update(applied)
    return env, applied

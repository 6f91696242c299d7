"""Train one trainer on one fold through ``nnUNetv2_train``, resumably, and read back what nnU-Net logged."""
from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_mamba.comparison.environment import nnunet_command

PLANS = "nnUNetPlans"


@dataclass(frozen=True)
class FoldRun:
    """One (trainer, fold) of a benchmark and its nnU-Net output folder."""
    dataset: str
    trainer: str
    configuration: str
    fold: int
    results_root: Path

    @property
    def folder(self) -> Path:
        return self.results_root / self.dataset / f"{self.trainer}__{PLANS}__{self.configuration}" / f"fold_{self.fold}"

    @property
    def validation_folder(self) -> Path:
        return self.folder / "validation"

    def is_finished(self) -> bool:
        """Final checkpoint and nnU-Net's validation summary both written."""
        return (self.folder / "checkpoint_final.pth").is_file() and (self.validation_folder / "summary.json").is_file()

    def can_continue(self) -> bool:
        return any((self.folder / name).is_file() for name in ("checkpoint_latest.pth", "checkpoint_final.pth"))

    def train_command(self, dataset_id: int, device: str) -> list[str]:
        command = [nnunet_command("nnUNetv2_train"), str(dataset_id), self.configuration, str(self.fold),
                   "-tr", self.trainer, "-p", PLANS, "-device", device]
        return command + (["--c"] if self.can_continue() else [])


def train_fold(run: FoldRun, dataset_id: int, device: str, env: dict, log_file: Path) -> float | None:
    """Train (or continue) ``run`` unless finished; returns the wall seconds spent, None if nothing was run.

    nnUNetv2_train's output goes to ``log_file``; a failure raises with the log's last lines.
    """
    if run.is_finished():
        return None
    log_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log_file.open("a") as handle:
        result = subprocess.run(run.train_command(dataset_id, device), env=env, stdout=handle,
                                stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"nnUNetv2_train failed for {run.trainer} fold {run.fold} (log: {log_file}):\n{tail}")
    return time.perf_counter() - start


def read_training_log(run: FoldRun) -> dict:
    """nnU-Net's per-epoch logging of a finished fold (from checkpoint_final.pth) as plain lists, plus
    ``iterations_per_epoch`` from the training log and ``seconds_per_iteration`` (median epoch wall time divided by
    the training iterations per epoch: includes data loading and the per-epoch validation)."""
    import numpy as np

    from nnunetv2_mamba.training.checkpoints import read_training_checkpoint

    checkpoint = read_training_checkpoint(run.folder / "checkpoint_final.pth")
    logging = checkpoint["logging"]
    curves = {key: [float(v) if not isinstance(v, (list, tuple)) else [float(x) for x in v] for v in values]
              for key, values in logging.items()}
    iterations = _iterations_per_epoch(run.folder)
    durations = np.subtract(curves["epoch_end_timestamps"], curves["epoch_start_timestamps"][: len(
        curves["epoch_end_timestamps"])])
    curves["iterations_per_epoch"] = iterations
    curves["seconds_per_iteration"] = float(np.median(durations) / iterations) if len(durations) else float("nan")
    return curves


def _iterations_per_epoch(folder: Path) -> int:
    """Training iterations per epoch written by our budget trainers in nnU-Net's log; nnU-Net's 250 otherwise."""
    for log in sorted(folder.glob("training_log_*.txt"), reverse=True):
        found = re.search(r"nnUNet_mamba_budget_iterations_per_epoch=(\d+)", log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
    return 250

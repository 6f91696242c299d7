"""Train one trainer on one fold through ``nnUNetv2_train``, resumably, and read back what the run logged."""
from __future__ import annotations

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

    def status(self) -> str:
        """What ``train_fold`` will do: "finished already", "continuing (--c)" or "training from scratch"."""
        if self.is_finished():
            return "finished already"
        return "continuing (--c)" if self.can_continue() else "training from scratch"

    def finished_with_other_budgets(self) -> list[str]:
        """Trainer names of this fold's finished runs of the same base trainer with another budget (never reused:
        the budget is part of the trainer's name, hence of the results folder)."""
        own = _budget_split_or_none(self.trainer)
        base = own[0] if own else self.trainer
        names = []
        for folder in sorted((self.results_root / self.dataset).glob(f"{base}_*__{PLANS}__{self.configuration}")):
            trainer = folder.name.split("__")[0]
            split = _budget_split_or_none(trainer)
            other = FoldRun(self.dataset, trainer, self.configuration, self.fold, self.results_root)
            if trainer != self.trainer and split and split[0] == base and other.is_finished():
                names.append(trainer)
        return names

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
    """nnU-Net's per-epoch logging of a finished fold (from checkpoint_final.pth) as plain lists, plus ``setup``
    (the run's training_setup.json: budget, optimizer, schedule, safeguards), ``iterations_per_epoch`` and
    ``seconds_per_iteration`` (median epoch wall time divided by the training iterations per epoch: includes data
    loading and the per-epoch validation)."""
    import numpy as np

    from nnunetv2_mamba.training.budget import read_training_setup
    from nnunetv2_mamba.training.checkpoints import read_training_checkpoint

    setup = read_training_setup(run.folder)
    checkpoint = read_training_checkpoint(run.folder / "checkpoint_final.pth")
    logging = checkpoint["logging"]
    curves = {key: [float(v) if not isinstance(v, (list, tuple)) else [float(x) for x in v] for v in values]
              for key, values in logging.items()}
    iterations = setup["iterations_per_epoch"]
    durations = np.subtract(curves["epoch_end_timestamps"], curves["epoch_start_timestamps"][: len(
        curves["epoch_end_timestamps"])])
    curves["setup"] = setup
    curves["iterations_per_epoch"] = iterations
    curves["seconds_per_iteration"] = float(np.median(durations) / iterations) if len(durations) else float("nan")
    return curves


def _budget_split_or_none(trainer: str):
    """``split_budget_name`` for a folder name found on disk: None instead of an error for malformed names."""
    from nnunetv2_mamba.training.budget import BudgetNameError, split_budget_name

    try:
        return split_budget_name(trainer)
    except BudgetNameError:
        return None

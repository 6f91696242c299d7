"""One run of a benchmark, a compared model (trainer with its budget, plans, configuration) and a fold: its nnU-Net
folder, what ``nnUNetv2_train`` still has to do for it, and what it logged."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnunetv2_mamba.comparison.execution import job_key
from nnunetv2_mamba.comparison.job_device import DEVICE
from nnunetv2_mamba.comparison.methods import Model


@dataclass(frozen=True)
class FoldRun:
    """One ``fold`` of ``model`` on ``dataset``, under nnU-Net's results root."""
    model: Model
    fold: int
    dataset: str
    results_root: Path

    @property
    def key(self) -> str:
        """The key of this run's training job (``train.<identifier>.fold<N>``): its job, its log file's stem and its
        entry among the report's missing or failed runs."""
        return job_key("train", self.model.identifier, f"fold{self.fold}")

    @property
    def folder(self) -> Path:
        return self.model.folder(self.results_root, self.dataset) / f"fold_{self.fold}"

    @property
    def validation_folder(self) -> Path:
        return self.folder / "validation"

    def is_trained(self) -> bool:
        return (self.folder / "checkpoint_final.pth").is_file()

    def has_probabilities(self) -> bool:
        """nnU-Net's validation wrote a ``.npz`` beside every segmentation (``--npz``), as ensembling needs."""
        folder = self.validation_folder
        if not folder.is_dir():
            return False
        probabilities = {p.name.split(".")[0] for p in folder.glob("*.npz")}
        segmentations = {p.name.split(".")[0] for p in folder.iterdir() if p.suffix not in (".npz", ".pkl", ".json")}
        return bool(segmentations) and segmentations <= probabilities

    def is_finished(self, npz: bool = False) -> bool:
        """Final checkpoint and nnU-Net's validation summary written (and its probabilities, with ``npz``)."""
        return (self.is_trained() and (self.validation_folder / "summary.json").is_file()
                and (not npz or self.has_probabilities()))

    def can_continue(self) -> bool:
        return any((self.folder / name).is_file() for name in ("checkpoint_latest.pth", "checkpoint_final.pth"))

    def status(self, npz: bool = False) -> str:
        """What ``train_command`` will do, in words."""
        if self.is_finished(npz):
            return "finished already"
        if self.is_finished():
            return "trained without --npz: validating again with --val --npz (no retraining)"
        if self.is_trained():
            return "trained, validating (--val)"
        return "continuing (--c)" if self.can_continue() else "training from scratch"

    def finished_with_other_budgets(self) -> list[str]:
        """Trainer names of this fold's finished runs of the same base trainer, plans and configuration with another
        budget (never reused: the budget is part of the trainer's name, hence of the results folder)."""
        own = _budget_split_or_none(self.model.trainer)
        base = own[0] if own else self.model.trainer
        names = []
        for folder in sorted((self.results_root / self.dataset).glob(f"{base}_*")):
            try:
                model = Model.from_identifier(folder.name)
            except ValueError:
                continue
            split = _budget_split_or_none(model.trainer)
            if ((model.plans, model.configuration) == (self.model.plans, self.model.configuration)
                    and model.trainer != self.model.trainer and split and split[0] == base
                    and FoldRun(model, self.fold, self.dataset, self.results_root).is_finished()):
                names.append(model.trainer)
        return names

    def train_command(self, dataset_id: int, npz: bool = False) -> list[str]:
        """``nnUNetv2_train`` for what is left: from scratch, ``--c`` to continue, or ``--val`` for a trained run
        whose validation (or its ``--npz`` probabilities) is missing; ``-device`` the job's own (``DEVICE``)."""
        if self.is_trained():
            return self.model.validate_command(dataset_id, self.fold, DEVICE, npz)
        return self.model.train_command(dataset_id, self.fold, DEVICE, npz, resume=self.can_continue())


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

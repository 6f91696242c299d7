"""Training length as part of a trainer's name: ``<Trainer>_<E>ep<I>it`` is ``<Trainer>`` trained for E epochs of I
iterations, with max(1, round(I / 5)) validation iterations per epoch (nnU-Net's 250:50 ratio).

Such classes are synthesised on demand (:mod:`nnunetv2_mamba.training.trainer_variants`) for any trainer nnU-Net
can find — ours, nnU-Net's own (``nnUNetTrainer_8ep25it``), recipe variants — so no ``X_Budget`` class has to be
written. The budget is part of the trainer's name and so of its results folder: a run with another budget is
another run. This module holds the budget itself, its name, the ``TrainingBudget`` mixin, and what every budgeted
or seeded run writes to ``training_setup.json`` in its fold folder at training start (``RecordsTrainingSetup``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from timm.layers import DropPath
from torch._dynamo import OptimizedModule

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mamba.training.base import unwrap_network
from nnunetv2_mamba.training.checkpoints import SafeCheckpoints
from nnunetv2_mamba.training.nonfinite import NonFiniteLossGuard

BUDGET_NAME = re.compile(r"^(?P<base>\w+?)_(?P<epochs>\d+)ep(?P<iterations>\d+)it$")
SETUP_FILE = "training_setup.json"
OPTIMIZER_SETTINGS = ("lr", "momentum", "nesterov", "dampening", "weight_decay", "betas", "eps")


class TrainerNameError(ValueError):
    """A trainer name whose variant suffixes (scan control, budget, seed) cannot name a run; the message says what
    to type instead."""


class BudgetNameError(TrainerNameError):
    """A ``<Trainer>_<E>ep<I>it`` name that cannot be a budget variant; the message says what to type instead."""


@dataclass(frozen=True)
class Budget:
    """Epochs, training iterations per epoch and validation iterations per epoch of one training."""
    epochs: int
    iterations_per_epoch: int
    val_iterations_per_epoch: int

    @classmethod
    def of(cls, epochs: int, iterations_per_epoch: int) -> "Budget":
        """The budget of E epochs x I iterations, validation iterations derived as max(1, round(I / 5))."""
        if epochs < 1 or iterations_per_epoch < 1:
            raise BudgetNameError(f"a budget of {epochs} epochs x {iterations_per_epoch} iterations: both must be "
                                  "positive integers.")
        return cls(epochs, iterations_per_epoch, max(1, round(iterations_per_epoch / 5)))

    @property
    def suffix(self) -> str:
        return f"_{self.epochs}ep{self.iterations_per_epoch}it"

    def __str__(self) -> str:
        return (f"{self.epochs} epochs x {self.iterations_per_epoch} iterations "
                f"({self.val_iterations_per_epoch} validation iterations per epoch)")


def split_budget_name(name: str) -> tuple[str, Budget] | None:
    """(base trainer name, budget) of ``<base>_<E>ep<I>it``; None for any other name.

    One ``BudgetNameError`` for a zero or zero-padded count and for a budget on a budget variant (its base name
    carries a budget too): each budget has exactly one name, hence one results folder.
    """
    found = BUDGET_NAME.match(name)
    if found is None:
        return None
    base, epochs, iterations = found["base"], int(found["epochs"]), int(found["iterations"])
    if epochs < 1 or iterations < 1:
        raise BudgetNameError(f"{name}: a budget needs at least 1 epoch of 1 iteration.")
    budget = Budget.of(epochs, iterations)
    if base + budget.suffix != name:
        raise BudgetNameError(f"{name}: write the budget without leading zeros, {base + budget.suffix}.")
    inner = BUDGET_NAME.match(base)
    if inner is not None:
        raise BudgetNameError(f"{name} puts a budget on {base}, which has one already; name one budget, "
                              f"e.g. {inner['base'] + budget.suffix}.")
    return base, budget


def budget_trainer_name(trainer: str, epochs: int, iterations_per_epoch: int) -> str:
    """``<trainer>_<E>ep<I>it``: the name under which nnU-Net trains ``trainer`` for that budget."""
    if split_budget_name(trainer) is not None:
        raise BudgetNameError(f"{trainer} has a budget in its name already; give the trainer without it, "
                              f"{split_budget_name(trainer)[0]}.")
    return trainer + Budget.of(epochs, iterations_per_epoch).suffix


class RecordsTrainingSetup:
    """Mixin for nnU-Net trainers: the setup in effect (``training_setup``) is written to ``training_setup.json`` in
    the fold folder when training starts."""

    def on_train_start(self):
        super().on_train_start()
        if self.local_rank == 0:
            path = Path(self.output_folder) / SETUP_FILE
            path.write_text(json.dumps(training_setup(self), indent=2))


class TrainingBudget(RecordsTrainingSetup):
    """Mixin for nnU-Net trainers: the training length is the class attribute ``budget``; the setup is recorded."""

    budget: Budget

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.budget.epochs
        self.num_iterations_per_epoch = self.budget.iterations_per_epoch
        self.num_val_iterations_per_epoch = self.budget.val_iterations_per_epoch
        self.print_to_log_file(f"Training budget: {self.budget}")


def training_setup(trainer: nnUNetTrainer) -> dict:
    """What an initialised trainer trains with: budget, seed (None: unseeded), batch, patch, deep supervision, the
    network's scan (None for a network without one), drop path (the largest stochastic-depth rate in the network;
    None for a network without any), optimizer, schedule and our safeguards."""
    group = trainer.optimizer.param_groups[0]
    network = trainer.network
    if isinstance(network, torch.nn.parallel.DistributedDataParallel):
        network = network.module
    bare = unwrap_network(network)
    return {"trainer": type(trainer).__name__,
            "epochs": trainer.num_epochs, "iterations_per_epoch": trainer.num_iterations_per_epoch,
            "val_iterations_per_epoch": trainer.num_val_iterations_per_epoch,
            "seed": getattr(trainer, "seed", None),
            "batch_size": trainer.batch_size, "patch_size": list(trainer.configuration_manager.patch_size),
            "deep_supervision": bool(trainer.enable_deep_supervision),
            "network": type(bare).__name__, "scan": getattr(getattr(bare, "geometry", None), "scan", None),
            "drop_path_rate": max((m.drop_prob for m in network.modules() if isinstance(m, DropPath)), default=None),
            "optimizer": type(trainer.optimizer).__name__, "initial_lr": trainer.initial_lr,
            "optimizer_settings": {k: group[k] for k in OPTIMIZER_SETTINGS if k in group},
            "lr_scheduler": type(trainer.lr_scheduler).__name__,
            "non_finite_guard": isinstance(trainer, NonFiniteLossGuard),
            "atomic_checkpoints": isinstance(trainer, SafeCheckpoints),
            "torch_compile": isinstance(network, OptimizedModule),
            "device": str(trainer.device)}


def read_training_setup(fold_folder: str | Path) -> dict:
    """The ``training_setup.json`` a budgeted or seeded run wrote; one clear error when the fold has none."""
    path = Path(fold_folder) / SETUP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: this fold was not trained by a budgeted or seeded trainer "
                                "(<Trainer>_<E>ep<I>it, _Tiny or _seed<K>) of this version. Delete the fold folder "
                                "and train it again.")
    return json.loads(path.read_text())

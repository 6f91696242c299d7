"""Training length from environment variables, for benchmarks that compare trainers at an equal budget."""
from __future__ import annotations

import os

import torch

EPOCHS_ENV = "nnUNet_mamba_budget_epochs"
ITERATIONS_ENV = "nnUNet_mamba_budget_iterations_per_epoch"
VAL_ITERATIONS_ENV = "nnUNet_mamba_budget_val_iterations"


def read_positive_int(name: str, default: int) -> int:
    """Integer value of environment variable ``name`` (``default`` when unset); one clear error otherwise."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}={text!r} must be a positive integer (or unset for the default {default}).")
    return value


class TrainingBudget:
    """Mixin for nnU-Net trainers: epochs, iterations per epoch and validation iterations from the environment.

    ``budget_defaults`` = (epochs, iterations per epoch, validation iterations) used for unset variables.
    The values in effect are written to the training log.
    """

    budget_defaults: tuple[int, int, int] = (20, 50, 10)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        epochs, iterations, val_iterations = self.budget_defaults
        self.num_epochs = read_positive_int(EPOCHS_ENV, epochs)
        self.num_iterations_per_epoch = read_positive_int(ITERATIONS_ENV, iterations)
        self.num_val_iterations_per_epoch = read_positive_int(VAL_ITERATIONS_ENV, val_iterations)
        self.print_to_log_file(
            f"Training budget: {EPOCHS_ENV}={self.num_epochs}, {ITERATIONS_ENV}={self.num_iterations_per_epoch}, "
            f"{VAL_ITERATIONS_ENV}={self.num_val_iterations_per_epoch}")

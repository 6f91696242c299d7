"""The trainer mixin that trains with a ``Recipe``: the one place a recipe turns into nnU-Net's settings."""
from __future__ import annotations

import torch

from nnunetv2_mamba.training.optimizers import build_optimizer
from nnunetv2_mamba.training.recipes import NNUNET_RECIPE, Recipe
from nnunetv2_mamba.training.schedules import RecipeLRScheduler


class RecipeTrainer:
    """Mixin for nnU-Net trainers: optimiser, learning-rate schedule and deep supervision from the class's
    ``recipe``, including the ``clip_norm`` that ``NonFiniteLossGuard`` clips gradients to.

    ``initial_lr`` and ``weight_decay`` mirror the recipe so nnU-Net's logged hyper-parameters are true. A
    per-iteration recipe sets the rate before every training step, counting the epoch's steps from
    ``on_train_epoch_start``; nnU-Net's ``lr_scheduler.step(epoch)`` there sets the rate of the epoch's first step,
    which nnU-Net logs.
    """

    recipe: Recipe = NNUNET_RECIPE

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr, self.weight_decay = self.recipe.lr, self.recipe.weight_decay
        self.enable_deep_supervision = self.recipe.deep_supervision
        self.iteration_in_epoch = 0

    @property
    def clip_norm(self) -> float | None:
        return self.recipe.clip_norm

    def configure_optimizers(self):
        optimizer = build_optimizer(self.recipe, self.network)
        return optimizer, RecipeLRScheduler(optimizer, self.recipe, self.num_epochs, self.num_iterations_per_epoch)

    def on_train_start(self):
        super().on_train_start()
        self.print_to_log_file(f"Training recipe of {type(self).__name__}: {self.recipe}")

    def on_train_epoch_start(self):
        self.iteration_in_epoch = 0
        super().on_train_epoch_start()

    def train_step(self, batch: dict) -> dict:
        self.lr_scheduler.step_iteration(self.current_epoch, self.iteration_in_epoch)
        self.iteration_in_epoch += 1
        return super().train_step(batch)

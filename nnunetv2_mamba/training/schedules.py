"""Learning rates of a ``Recipe``: the closed form per step, and the scheduler nnU-Net's trainer drives.

nnU-Net calls ``lr_scheduler.step(epoch)`` at each epoch's start; a per-iteration recipe is also stepped before
every training step by ``RecipeTrainer`` (``step_iteration``). The rate is a function of (epoch, iteration) alone,
so a training resumed with ``--c`` continues on the same curve.
"""
from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from nnunetv2_mamba.training.recipes import Recipe


def learning_rate(recipe: Recipe, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The rate at ``step`` (0-based) of ``total_steps`` (epochs, or iterations for a per-iteration recipe).

    The first W = round(warmup_fraction·total_steps) steps take lr·(step+1)/(W+1), a line rising from 0; then
    t = (step-W)/(total_steps-W) (at most 1) drives the recipe's schedule. ``steps_per_epoch`` converts the periodic
    cosine's period from epochs to steps.
    """
    warmup = round(recipe.warmup_fraction * total_steps)
    if step < warmup:
        return recipe.lr * (step + 1) / (warmup + 1)
    if recipe.schedule == "periodic_cosine":
        phase = (step - warmup) / (recipe.cosine_period_epochs * steps_per_epoch)
    else:
        phase = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
    if recipe.schedule == "poly":
        return recipe.lr * (1 - phase) ** recipe.poly_exponent
    return recipe.min_lr + (recipe.lr - recipe.min_lr) * (1 + math.cos(math.pi * phase)) / 2


class RecipeLRScheduler(LRScheduler):
    """Sets every parameter group's rate to ``learning_rate`` of the recipe for a training of ``num_epochs`` x
    ``iterations_per_epoch``. ``step(epoch)``: the rate of the epoch's first iteration (nnU-Net's call);
    ``step_iteration(epoch, iteration)``: the rate of that iteration, a no-op for a per-epoch recipe."""

    def __init__(self, optimizer: Optimizer, recipe: Recipe, num_epochs: int, iterations_per_epoch: int):
        self.recipe, self.num_epochs, self.iterations_per_epoch = recipe, num_epochs, iterations_per_epoch
        self.ctr = 0
        super().__init__(optimizer)

    def lr_at(self, epoch: int, iteration: int = 0) -> float:
        if self.recipe.per_iteration:
            return learning_rate(self.recipe, epoch * self.iterations_per_epoch + iteration,
                                 self.num_epochs * self.iterations_per_epoch, self.iterations_per_epoch)
        return learning_rate(self.recipe, epoch, self.num_epochs, 1)

    def get_lr(self) -> list[float]:
        return [self.lr_at(self.last_epoch)] * len(self.optimizer.param_groups)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def step(self, current_step: int | None = None) -> None:
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        self.last_epoch = current_step
        self.set_lr(self.lr_at(current_step))

    def step_iteration(self, epoch: int, iteration: int) -> None:
        if self.recipe.per_iteration:
            self.set_lr(self.lr_at(epoch, iteration))

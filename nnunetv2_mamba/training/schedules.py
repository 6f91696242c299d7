"""Learning-rate schedules stepped once per epoch, with nnU-Net's ``step(epoch)`` call convention."""
from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class CosineLRScheduler(LRScheduler):
    """lr(epoch) = eta_min + (initial_lr - eta_min) * (1 + cos(pi * epoch / period)) / 2.

    The closed form of torch's ``CosineAnnealingLR`` (which VM-UNet steps per epoch with T_max = ``period``, so
    the rate rises again after ``period`` epochs), without its deprecation warning for ``step(epoch)``.
    """

    def __init__(self, optimizer: Optimizer, initial_lr: float, period: int, eta_min: float = 0.0):
        self.initial_lr, self.period, self.eta_min = initial_lr, period, eta_min
        self.ctr = 0
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        return self.eta_min + (self.initial_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.period)) / 2

    def get_lr(self) -> list[float]:
        return [self.lr_at(self.last_epoch)] * len(self.optimizer.param_groups)

    def step(self, current_step: int | None = None) -> None:
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        self.last_epoch = current_step
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(current_step)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

"""The trainers users name with ``-tr``: Mamba-UNet and VM-UNet, and their variants.

| suffix | what changes |
|---|---|
| (none) | nnU-Net's recipe (SGD 0.99 Nesterov, poly LR, 1000 x 250 iterations, DS loss) with the paper network |
| ``NoDeepSupervision`` | one output, plain loss |
| ``_PaperRecipe`` | the paper's optimiser and schedule (docs/architecture.md, "Training recipes") |
| ``_Pretrained`` | encoder from the VMamba checkpoint in ``nnUNet_mamba_pretrained`` at training start |
| ``_Tiny`` | dims (16, 32, 64, 128) and a 2 x 3-iteration budget: tests and CPU smoke runs |

Any of them, and any other trainer nnU-Net finds, trains for E epochs of I iterations as ``<Trainer>_<E>ep<I>it``
(e.g. ``nnUNetTrainerVMUNet_PaperRecipe_8ep25it``, ``nnUNetTrainer_8ep25it``), synthesised on demand by
:mod:`nnunetv2_mamba.training.budget`; no class is written for a budget.
"""
from __future__ import annotations

import torch

from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.training.base import VSSUNetTrainerBase
from nnunetv2_mamba.training.budget import Budget, TrainingBudget
from nnunetv2_mamba.training.warm_start import PretrainedEncoder
from nnunetv2_mamba.training.schedules import CosineLRScheduler

TINY_DIMS = {"dims": (16, 32, 64, 128)}
TINY_BUDGET = Budget(epochs=2, iterations_per_epoch=3, val_iterations_per_epoch=2)


class nnUNetTrainerMambaUNet(VSSUNetTrainerBase):
    """Mamba-UNet (dims 96-768, encoder depths 2,2,2,2, decoder 2,2,2) in nnU-Net's training recipe."""
    network_class = MambaUNet


class nnUNetTrainerVMUNet(VSSUNetTrainerBase):
    """VM-UNet (dims 96-768, encoder depths 2,2,2,2, decoder 2,2,2,1) in nnU-Net's training recipe."""
    network_class = VMUNet


class NoDeepSupervision:
    """Mixin: train on the full-resolution output only."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False


class nnUNetTrainerMambaUNetNoDeepSupervision(NoDeepSupervision, nnUNetTrainerMambaUNet):
    pass


class nnUNetTrainerVMUNetNoDeepSupervision(NoDeepSupervision, nnUNetTrainerVMUNet):
    pass


class nnUNetTrainerMambaUNet_PaperRecipe(nnUNetTrainerMambaUNet):
    """Mamba-UNet's optimiser: SGD lr 1e-2, momentum 0.9, weight decay 1e-4, poly decay (per epoch here)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr, self.weight_decay = 1e-2, 1e-4

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.network.parameters(), self.initial_lr, momentum=0.9,
                                    weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)


class nnUNetTrainerVMUNet_PaperRecipe(nnUNetTrainerVMUNet):
    """VM-UNet's optimiser: AdamW lr 1e-3, weight decay 1e-2, cosine with T_max 50 epochs, eta_min 1e-5."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr, self.weight_decay = 1e-3, 1e-2

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.network.parameters(), self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, CosineLRScheduler(optimizer, self.initial_lr, period=50, eta_min=1e-5)


class nnUNetTrainerMambaUNet_Pretrained(PretrainedEncoder, nnUNetTrainerMambaUNet):
    pass


class nnUNetTrainerVMUNet_Pretrained(PretrainedEncoder, nnUNetTrainerVMUNet):
    pass


class nnUNetTrainerMambaUNet_Tiny(TrainingBudget, nnUNetTrainerMambaUNet):
    """Narrow Mamba-UNet, 2 epochs x 3 iterations (``_<E>ep<I>it`` names another budget): tests, CPU smoke runs."""
    fixed_network_kwargs = TINY_DIMS
    budget = TINY_BUDGET


class nnUNetTrainerVMUNet_Tiny(TrainingBudget, nnUNetTrainerVMUNet):
    """Narrow VM-UNet, 2 epochs x 3 iterations (``_<E>ep<I>it`` names another budget): tests, CPU smoke runs."""
    fixed_network_kwargs = TINY_DIMS
    budget = TINY_BUDGET


__all__ = [name for name, value in dict(globals()).items()
           if isinstance(value, type) and issubclass(value, nnUNetTrainer) and value.__module__ == __name__]

"""The trainers users name with ``-tr``: Mamba-UNet and VM-UNet, and their variants.

| suffix | what changes |
|---|---|
| (none) | ``DEFAULT_RECIPE`` (AdamW 2e-3, cosine, no drop path: ``_AdamW2em3CosineNoDropPath``), 1000 x 250 |
| ``_<recipe>`` | a recipe of ``named_recipes`` (docs/architecture.md, "Training recipes"): ``_PaperRecipe``, |
| | ``_NoDS``, ``_AdamW1em3Cosine``, ...; ``recipe_trainer_names()`` lists them |
| ``_Pretrained`` | encoder from the VMamba checkpoint named in the plans (``nnunetv2_mamba set-pretrained``) |
| ``_Tiny`` | dims (16, 32, 64, 128) and a 2 x 3-iteration budget: tests and CPU smoke runs |

Any of them has the scan controls ``<Trainer>_NoScan`` and ``<Trainer>_OneWay`` (the selective scan removed, or
one direction only: nets/scan_variants.py); any of them, and any other trainer nnU-Net finds, trains for E epochs
of I iterations as ``<Trainer>_<E>ep<I>it`` (e.g. ``nnUNetTrainerVMUNet_PaperRecipe_8ep25it``,
``nnUNetTrainer_8ep25it``) and with seed K as ``<Trainer>_seed<K>``, in that order
(``nnUNetTrainerMambaUNet_NoScan_2ep4it_seed1``). These classes are synthesised on demand by
:mod:`nnunetv2_mamba.training.trainer_variants`; none is written here.
"""
from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.training.base import VSSUNetTrainerBase
from nnunetv2_mamba.training.budget import Budget, TrainingBudget
from nnunetv2_mamba.training.recipes import DEFAULT_RECIPE, named_recipes
from nnunetv2_mamba.training.warm_start import PretrainedEncoder

TINY_DIMS = {"dims": (16, 32, 64, 128)}
TINY_BUDGET = Budget(epochs=2, iterations_per_epoch=3, val_iterations_per_epoch=2)


class nnUNetTrainerMambaUNet(VSSUNetTrainerBase):
    """Mamba-UNet (dims 96-768, encoder depths 2,2,2,2, decoder 2,2,2) trained with ``DEFAULT_RECIPE``."""
    network_class = MambaUNet
    recipe = DEFAULT_RECIPE["MambaUNet"]


class nnUNetTrainerVMUNet(VSSUNetTrainerBase):
    """VM-UNet (dims 96-768, encoder depths 2,2,2,2, decoder 2,2,2,1) trained with ``DEFAULT_RECIPE``."""
    network_class = VMUNet
    recipe = DEFAULT_RECIPE["VMUNet"]


def define_recipe_trainers() -> list[str]:
    """One class ``<network trainer>_<suffix>`` per named recipe and network, defined in this module; their names."""
    names = []
    for network_trainer in (nnUNetTrainerMambaUNet, nnUNetTrainerVMUNet):
        network = network_trainer.network_class.__name__
        for suffix, recipe in named_recipes(network).items():
            name = f"{network_trainer.__name__}_{suffix}"
            globals()[name] = type(name, (network_trainer,), {
                "__module__": __name__, "__qualname__": name, "recipe": recipe,
                "__doc__": f"{network} trained with the recipe {suffix!r}: {recipe}"})
            names.append(name)
    return names


RECIPE_TRAINERS = define_recipe_trainers()


def recipe_trainer_names(network: str | None = None) -> list[str]:
    """The recipe-study candidates: every ``<network trainer>_<recipe>`` trainer, of ``network`` (``MambaUNet`` or
    ``VMUNet``) or of both."""
    return [name for name in RECIPE_TRAINERS
            if network is None or name.startswith(f"nnUNetTrainer{network}_")]


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

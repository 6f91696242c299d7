"""Training recipes as values: optimiser, learning-rate schedule, deep supervision and gradient clipping in one
frozen ``Recipe``, and the named recipes the trainers are generated from (docs/architecture.md, "Training recipes").

Every named recipe says in its name what it changes relative to nnU-Net's own recipe (``NNUNET_RECIPE``), so a
trainer's name keeps its meaning when ``DEFAULT_RECIPE`` (what ``nnUNetTrainerMambaUNet`` / ``nnUNetTrainerVMUNet``
train with) is changed. This module imports no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("poly", "cosine", "periodic_cosine")


@dataclass(frozen=True)
class Recipe:
    """How a network is optimised.

    optimizer: ``sgd`` (``momentum``, ``nesterov``) or ``adamw`` (``betas``); ``lr`` is the peak learning rate.
    decay_all_parameters: True puts every parameter under ``weight_decay`` (nnU-Net, both papers' code); False
    follows VMamba's groups: no decay on 1-D parameters (norms), biases, ``A_logs`` and ``Ds``.
    warmup_fraction: share of the training's learning-rate steps spent on a line rising from 0 towards lr.
    schedule after the warm-up: ``poly`` lr·(1-t)^poly_exponent, ``cosine`` min_lr + (lr-min_lr)·(1+cos πt)/2
    over the remaining steps (t in [0, 1)), ``periodic_cosine`` the same cosine with a period of
    ``cosine_period_epochs`` epochs whatever the training's length (torch's CosineAnnealingLR stepped per epoch,
    as VM-UNet does). ``min_lr`` is the cosines' floor.
    per_iteration: the rate changes every iteration; False: once per epoch, at its start (nnU-Net's convention).
    deep_supervision: nnU-Net's multi-scale loss; False: the full-resolution output alone.
    clip_norm: gradient norm clipped to this value before each step; None: no clipping.
    drop_path_rate: stochastic depth of the network's deepest block (the blocks' rates rise linearly to it, as in
    VMamba); None: the network's own default, the papers' 0.2. A regulariser only: the parameters, hence the
    checkpoints, are the same for every rate.
    """

    optimizer: str = "sgd"
    lr: float = 1e-2
    weight_decay: float = 3e-5
    momentum: float = 0.99
    nesterov: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    decay_all_parameters: bool = True
    warmup_fraction: float = 0.0
    schedule: str = "poly"
    poly_exponent: float = 0.9
    min_lr: float = 0.0
    cosine_period_epochs: int | None = None
    per_iteration: bool = False
    deep_supervision: bool = True
    clip_norm: float | None = 12.0
    drop_path_rate: float | None = None

    @property
    def optimizer_slots(self) -> int:
        """Floats of optimiser state per parameter: AdamW 2 (both moments), SGD 1 with momentum, else 0."""
        if self.optimizer == "adamw":
            return 2
        return 1 if self.momentum else 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Recipe optimizer {self.optimizer!r}: use one of {OPTIMIZERS}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Recipe schedule {self.schedule!r}: use one of {SCHEDULES}.")
        if (self.schedule == "periodic_cosine") != (self.cosine_period_epochs is not None):
            raise ValueError("Recipe: give cosine_period_epochs exactly when schedule='periodic_cosine'.")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"Recipe warmup_fraction={self.warmup_fraction}: use a value in [0, 1).")
        if self.drop_path_rate is not None and not 0 <= self.drop_path_rate < 1:
            raise ValueError(f"Recipe drop_path_rate={self.drop_path_rate}: use a value in [0, 1), or None for the "
                             "network's default.")
        if self.lr <= 0 or self.weight_decay < 0 or self.min_lr < 0 or (self.clip_norm is not None
                                                                           and self.clip_norm <= 0):
            raise ValueError("Recipe: lr and clip_norm must be positive, weight_decay and min_lr non-negative.")


#: nnU-Net 2.8.1's nnUNetTrainer: SGD 1e-2, momentum 0.99 Nesterov, wd 3e-5 on all parameters, poly per epoch,
#: deep supervision, gradient norm clipped to 12.
NNUNET_RECIPE = Recipe()

#: Each paper's own training code: Mamba-UNet (SGD 1e-2, momentum 0.9, wd 1e-4, poly updated every iteration) and
#: VM-UNet (AdamW 1e-3, wd 1e-2, CosineAnnealingLR T_max 50 epochs, eta_min 1e-5, stepped per epoch); both decay
#: every parameter, train one output and clip nothing.
PAPER_RECIPES = {
    "MambaUNet": Recipe(momentum=0.9, nesterov=False, weight_decay=1e-4, per_iteration=True,
                        deep_supervision=False, clip_norm=None),
    "VMUNet": Recipe(optimizer="adamw", lr=1e-3, weight_decay=1e-2, schedule="periodic_cosine",
                     cosine_period_epochs=50, min_lr=1e-5, deep_supervision=False, clip_norm=None),
}

ADAMW_LEARNING_RATES = {"1em4": 1e-4, "3em4": 3e-4, "1em3": 1e-3, "2em3": 2e-3}  # "em4" reads e-4
ADAMW_WARMUP_FRACTION = 0.05
#: what an AdamW recipe's name may add after its schedule, and what that changes
ADAMW_MODIFIERS = {"": {}, "NoDS": {"deep_supervision": False}, "NoDropPath": {"drop_path_rate": 0.0}}


def adamw(lr: float, schedule: str) -> Recipe:
    """AdamW with VMamba's parameter groups, wd 0.05, a linear warm-up over 5% of the iterations, then ``schedule``
    per iteration; deep supervision and clipping as nnU-Net's."""
    return replace(NNUNET_RECIPE, optimizer="adamw", lr=lr, weight_decay=0.05, decay_all_parameters=False,
                   warmup_fraction=ADAMW_WARMUP_FRACTION, schedule=schedule, per_iteration=True)


def named_recipes(network: str) -> dict[str, Recipe]:
    """Trainer-name suffix -> recipe for ``network`` (``MambaUNet`` or ``VMUNet``); each suffix says what it
    changes relative to nnU-Net's recipe: ``AdamW<lr><Schedule>`` and its ``NoDS`` / ``NoDropPath`` forms
    (``ADAMW_MODIFIERS``) besides nnU-Net's, the paper's and nnU-Net's with one change."""
    recipes = {
        "nnUNetRecipe": NNUNET_RECIPE,
        "PaperRecipe": PAPER_RECIPES[network],
        "NoDS": replace(NNUNET_RECIPE, deep_supervision=False),
        "Clip1": replace(NNUNET_RECIPE, clip_norm=1.0),
        "NoClip": replace(NNUNET_RECIPE, clip_norm=None),
    }
    for modifier, changes in ADAMW_MODIFIERS.items():
        for schedule in ("poly", "cosine"):
            for tag, lr in ADAMW_LEARNING_RATES.items():
                recipes[f"AdamW{tag}{schedule.capitalize()}{modifier}"] = replace(adamw(lr, schedule), **changes)
    return recipes


#: What ``nnUNetTrainerMambaUNet`` / ``nnUNetTrainerVMUNet`` (and their ``_Pretrained``, budget and tiny
#: variants) train with, from the recipe study (docs/recipe_study.md): AdamW 2e-3 with cosine decay and no drop
#: path (``_AdamW2em3CosineNoDropPath``) had the smallest mean gap to nnU-Net's CNN over four data sets at 1000
#: iterations for both networks (fold 0, where every finalist ran), though not on each data set; dropping
#: stochastic depth never cost more than 0.001 Dice in any run that compared it. The study has no evidence for
#: nnU-Net's full 1000 x 250 budget, where the papers' drop path (``_AdamW2em3Cosine``) may regularise better.
DEFAULT_RECIPE = {network: named_recipes(network)["AdamW2em3CosineNoDropPath"] for network in ("MambaUNet", "VMUNet")}

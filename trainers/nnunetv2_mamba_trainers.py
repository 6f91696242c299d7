"""nnU-Net imports this module by name from nnUNet_extTrainer; it only re-exports nnunetv2_mamba's trainers (with
the module ``__getattr__`` that synthesises their variants: scan controls, budgets, seeds)."""
from nnunetv2_mamba.training.trainer_exports import *  # noqa: F401,F403

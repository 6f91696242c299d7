"""nnU-Net imports this module by name from nnUNet_extTrainer; it only re-exports nnunetv2_mamba's trainers."""
from nnunetv2_mamba.training.available import *  # noqa: F401,F403

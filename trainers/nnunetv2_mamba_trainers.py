"""nnU-Net imports this module by name from nnUNet_extTrainer; it only re-exports nnunetv2_mamba's trainers, and
their budget variants ``<Trainer>_<E>ep<I>it`` through the re-exported module ``__getattr__`` (PEP 562)."""
from nnunetv2_mamba.training.available import *  # noqa: F401,F403
from nnunetv2_mamba.training.available import __getattr__  # noqa: F401

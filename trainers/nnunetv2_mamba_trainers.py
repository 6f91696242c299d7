"""nnU-Net imports this module by name from nnUNet_extTrainer; it only re-exports nnunetv2_mamba's trainers (with
the module ``__getattr__`` that synthesises their budget variants ``<Trainer>_<E>ep<I>it``)."""
from nnunetv2_mamba.training.available import *  # noqa: F401,F403

"""nnU-Net trainers for Mamba-UNet and VM-UNet.

The classes live in :mod:`nnunetv2_mamba.training.trainers`; nnU-Net finds them through the shim folder printed by
``nnunetv2_mamba trainers-path`` (set it as ``nnUNet_extTrainer``). This package file stays import-light so that
the ``trainers-path`` subcommand does not load torch.
"""

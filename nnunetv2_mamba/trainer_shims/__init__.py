"""The folder ``nnunetv2_mamba trainers-path`` prints, for ``nnUNet_extTrainer``: one-line shim modules."""

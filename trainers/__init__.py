"""Installed as ``nnunetv2_mamba.ext_trainers``; nnU-Net scans this folder's modules, not this file."""

"""Mamba-UNet and VM-UNet as size-agnostic networks, their VMamba v0 building blocks, and pretrained loading.

Both networks hold ``encoder`` (VMamba v0 names: ``encoder.patch_embed.*``, ``encoder.layers.{i}.blocks.{j}.*``,
``encoder.layers.{i}.downsample.*``) and ``decoder`` (the original code's decoder names, plus ``decoder.aux_heads.{k}.*``
with deep supervision); the full key lists are in ``mamba_unet`` and ``vm_unet``.
"""
from nnunetv2_mamba.nets.mamba_unet import MambaUNet
from nnunetv2_mamba.nets.state_dict import IncompatibleWeightsError
from nnunetv2_mamba.nets.vmamba_weights import PretrainedCheckpointError, PretrainedLoadReport, load_vmamba_pretrained
from nnunetv2_mamba.nets.ss2d import SS2D, VSSBlock
from nnunetv2_mamba.nets.vm_unet import VMUNet

__all__ = ["MambaUNet", "VMUNet", "SS2D", "VSSBlock", "load_vmamba_pretrained", "PretrainedLoadReport",
           "PretrainedCheckpointError", "IncompatibleWeightsError"]

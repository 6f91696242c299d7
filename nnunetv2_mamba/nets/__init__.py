"""Mamba-UNet and VM-UNet as size-agnostic 2D or 3D networks, their VMamba v0 building blocks (SS2D, SS3D), and
pretrained loading (2D checkpoints inflated into 3D networks).

Both networks hold ``encoder`` (VMamba v0 names: ``encoder.patch_embed.*``, ``encoder.layers.{i}.blocks.{j}.*``,
``encoder.layers.{i}.downsample.*``) and ``decoder`` (the original code's decoder names, plus ``decoder.aux_heads.{k}.*``
with deep supervision); the full key lists are in ``mamba_unet`` and ``vm_unet``.
"""
from nnunetv2_mamba.nets.mamba_unet import MambaUNet
from nnunetv2_mamba.nets.state_dict import IncompatibleWeightsError
from nnunetv2_mamba.nets.vmamba_weights import PretrainedCheckpointError, PretrainedLoadReport, load_vmamba_pretrained
from nnunetv2_mamba.nets.ss2d import SS2D, VSSBlock
from nnunetv2_mamba.nets.ss3d import SS3D
from nnunetv2_mamba.nets.vm_unet import VMUNet

__all__ = ["MambaUNet", "VMUNet", "SS2D", "SS3D", "VSSBlock", "load_vmamba_pretrained", "PretrainedLoadReport",
           "PretrainedCheckpointError", "IncompatibleWeightsError"]

"""Mamba-UNet and VM-UNet as size-agnostic networks, their VMamba v0 building blocks, and pretrained loading."""
from nnunetv2_mamba.nets.mamba_unet import MambaUNet
from nnunetv2_mamba.nets.pretrained import PretrainedCheckpointError, PretrainedLoadReport, load_vmamba_pretrained
from nnunetv2_mamba.nets.ss2d import SS2D, VSSBlock
from nnunetv2_mamba.nets.vm_unet import VMUNet

__all__ = ["MambaUNet", "VMUNet", "SS2D", "VSSBlock", "load_vmamba_pretrained", "PretrainedLoadReport",
           "PretrainedCheckpointError"]

"""Synthetic ACDC-like cardiac MRI phantom written as an nnU-Net raw dataset."""
from nnunetv2_mamba.phantom.dataset import write_phantom_dataset
from nnunetv2_mamba.phantom.generator import LABELS, PhantomSlice, make_phantom_slice

__all__ = ["write_phantom_dataset", "make_phantom_slice", "PhantomSlice", "LABELS"]

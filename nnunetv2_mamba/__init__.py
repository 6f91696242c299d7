"""nnunetv2_mamba: Mamba-UNet and VM-UNet as nnU-Net v2 architectures.

Importing this package never imports mamba-ssm, causal-conv1d or triton eagerly; the scan backend is
chosen lazily on first use (see :mod:`nnunetv2_mamba.ops`).
"""

__version__ = "0.1.0"

"""nnU-Net experiment planners for Mamba-UNet and VM-UNet: 2D patch sizes in multiples of 32 and batch sizes
from a memory model of the network (:mod:`.memory`), the network class and its kwargs written into the plans."""

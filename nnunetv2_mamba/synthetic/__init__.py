"""Synthetic 2-D data sets written as nnU-Net raw datasets: a cardiac MRI phantom, thin vessels, small lesions and a
two-contrast task; each generator is deterministic for a seed (see ``make-dataset --help``)."""
from nnunetv2_mamba.synthetic.kinds import KINDS
from nnunetv2_mamba.synthetic.slices import DatasetKind, SyntheticSlice
from nnunetv2_mamba.synthetic.writer import write_dataset, write_phantom_dataset

__all__ = ["KINDS", "DatasetKind", "SyntheticSlice", "write_dataset", "write_phantom_dataset"]

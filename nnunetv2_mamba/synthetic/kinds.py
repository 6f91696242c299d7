"""Every synthetic data set by the name ``make-dataset`` takes."""
from __future__ import annotations

from nnunetv2_mamba.synthetic import cardiac, lesions, two_channel, vessels
from nnunetv2_mamba.synthetic.slices import DatasetKind

KINDS: dict[str, DatasetKind] = {kind.name: kind for kind in (cardiac.KIND, vessels.KIND, lesions.KIND,
                                                              two_channel.KIND)}

"""FLOPs of one forward pass (what the number means: nnunetv2_mamba/measurement)."""
from __future__ import annotations

import torch


def count_flops(network: torch.nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(all FLOPs, selective-scan FLOPs) of one forward pass of ``network`` on ``example``, without autograd.

    The scan is the registered operator ``torch.ops.nnunetv2_mamba.selective_scan`` in a forward-only call, and
    its FLOP formula comes with it (``FLOP_FORMULAS``), so one ``FlopCounterMode`` counts everything.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from nnunetv2_mamba.ops.scan_op import FLOP_FORMULAS

    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as mode:
        network(example)
    per_operator = mode.get_flop_counts()["Global"]
    return int(mode.get_total_flops()), int(per_operator.get(torch.ops.nnunetv2_mamba.selective_scan, 0))

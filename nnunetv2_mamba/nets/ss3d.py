"""SS3D: VMamba's selective-scan mixer over volumes (docs/three_d.md, "SS3D").

SS2D's parameters and math on a (B, D, H, W, C) volume: the depthwise convolution is ``conv3d`` (3x3x3), and the
K in {2, 4, 6} scan directions (``ops.cross_scan_3d``; default 6: each axis fastest, forward and reversed) each
have their own ``x_proj_weight``, ``dt_projs_*``, ``A_logs`` and ``Ds`` slice, as SS2D's four do. The selective
scan and its backends are SS2D's.
"""
from __future__ import annotations

from nnunetv2_mamba.nets.scan_variants import CROSS_SCAN
from nnunetv2_mamba.nets.ss2d import SelectiveScanMixer
from nnunetv2_mamba.ops import volume_directions

DEFAULT_DIRECTIONS = 6


class SS3D(SelectiveScanMixer):
    """K-direction selective scan over a volume: (B, D, H, W, C) -> (B, D, H, W, C), channel-last (``scan``: one
    direction or none, nets/scan_variants.py; ``num_directions`` is then the cross scan's that it replaces)."""

    def __init__(self, d_model: int, d_state: int = 16, expand: int = 2, d_conv: int = 3,
                 num_directions: int = DEFAULT_DIRECTIONS, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 dt_init_floor: float = 1e-4, scan: str = CROSS_SCAN):
        super().__init__(d_model, volume_directions(num_directions), d_state, expand, d_conv, dt_min, dt_max,
                         dt_init_floor, scan)

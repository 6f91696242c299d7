"""The fused Triton cross scans / merges (2D and 3D) against their torch definitions: part of the triton backend's
smoke test (:func:`~.backends.smoke_test_failure`), which decides whether the channels-first cross scans use them."""
from __future__ import annotations

import torch

from nnunetv2_mamba.ops.cross_scan import CrossMerge, CrossScan
from nnunetv2_mamba.ops.cross_scan_3d import CrossMerge3D, CrossScan3D

#: (B, C, H, W) of the 2D test map and (B, C, D, H, W) of the 3D test volume: odd, non-square edges
IMAGE_SHAPE, VOLUME_SHAPE = (2, 3, 5, 7), (1, 2, 3, 5, 4)


def fused_cross_scan_failure(device: str) -> str | None:
    """None if the Triton cross scan and merge of an image (4 directions) and of a volume (6) give exactly what the
    torch permutations give on ``device``, else which one differs. Values are moved, and the merges add in the
    definitions' order, so the results are equal bit for bit."""
    from nnunetv2_mamba.ops.cross_scan_3d_triton import cross_merge_3d_triton, cross_scan_3d_triton
    from nnunetv2_mamba.ops.cross_scan_triton import cross_merge_triton, cross_scan_triton

    generator = torch.Generator().manual_seed(0)
    image = torch.randn(IMAGE_SHAPE, generator=generator).to(device)
    volume = torch.randn(VOLUME_SHAPE, generator=generator).to(device)
    H, W = IMAGE_SHAPE[2:]
    image_sequences = torch.randn(IMAGE_SHAPE[0], 4, IMAGE_SHAPE[1], H * W, generator=generator).to(device)
    spatial = VOLUME_SHAPE[2:]
    volume_sequences = torch.randn(VOLUME_SHAPE[0], 6, VOLUME_SHAPE[1], volume[0, 0].numel(),
                                   generator=generator).to(device)
    pairs = {"cross scan": (cross_scan_triton(image), CrossScan.apply(image)),
             "cross merge": (cross_merge_triton(image_sequences, H, W), CrossMerge.apply(image_sequences, H, W)),
             "3D cross scan": (cross_scan_3d_triton(volume, 6), CrossScan3D.apply(volume, 6)),
             "3D cross merge": (cross_merge_3d_triton(volume_sequences, spatial),
                                CrossMerge3D.apply(volume_sequences, spatial))}
    for name, (fused, definition) in pairs.items():
        if not torch.equal(fused, definition):
            return f"the fused Triton {name} differs from its torch definition"
    return None

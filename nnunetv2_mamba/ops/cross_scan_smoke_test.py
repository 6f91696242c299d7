"""The smoke test of the fused Triton cross scans, run in production beside the scan's (:mod:`.scan_smoke_test`):
before a scan backend uses them on a GPU (:func:`~.backends.fused_cross_scans`, as part of the triton smoke test
:func:`~.backends.smoke_test_failure`), the fused cross scan / merge of an image (4 directions) and of a volume (6)
must give exactly what their torch definitions (:mod:`.cross_scan`, :mod:`.cross_scan_3d`) give on that device."""
from __future__ import annotations

import torch

from nnunetv2_mamba.ops.cross_scan import merge_image, scan_image
from nnunetv2_mamba.ops.cross_scan_3d import merge_volume, scan_volume

#: (B, C, H, W) of the 2D test map and (B, C, D, H, W) of the 3D test volume: odd, non-square edges
IMAGE_SHAPE, VOLUME_SHAPE = (2, 3, 5, 7), (1, 2, 3, 5, 4)


def fused_cross_scan_failure(device: str) -> str | None:
    """None if the Triton cross scans and merges equal their torch definitions on ``device``, else which one
    differs. Values are moved, and the merges add in the definitions' order, so the results are equal bit for bit."""
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
    pairs = {"cross scan": (cross_scan_triton(image), scan_image(image)),
             "cross merge": (cross_merge_triton(image_sequences, H, W), merge_image(image_sequences, (H, W))),
             "3D cross scan": (cross_scan_3d_triton(volume, 6), scan_volume(volume, 6)),
             "3D cross merge": (cross_merge_3d_triton(volume_sequences, spatial),
                                merge_volume(volume_sequences, spatial))}
    for name, (fused, definition) in pairs.items():
        if not torch.equal(fused, definition):
            return f"the fused Triton {name} differs from its torch definition"
    return None

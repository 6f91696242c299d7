"""The SS2D/SS3D core: the selective scan (backends cuda / triton / cpu / torch, see :mod:`.backends`), the
four-direction cross scan / merge of images and the K-direction one of volumes (their torch definitions; the fused
Triton kernels are a scan backend's choice). Importing this never imports mamba-ssm, causal-conv1d or triton."""
from nnunetv2_mamba.ops.backends import ScanBackend, scan_backend
from nnunetv2_mamba.ops.cross_scan import (cross_merge, cross_merge_channels_last, cross_scan,
                                           cross_scan_channels_last)
from nnunetv2_mamba.ops.cross_scan_3d import (cross_merge_3d, cross_merge_3d_channels_last, cross_scan_3d,
                                              cross_scan_3d_channels_last)
from nnunetv2_mamba.ops.dispatch import scan_on, selective_scan
from nnunetv2_mamba.ops.scan_directions import IMAGE_DIRECTIONS, ScanDirections, volume_directions
from nnunetv2_mamba.ops.scan_reference import selective_scan_reference

__all__ = ["selective_scan", "scan_on", "selective_scan_reference", "cross_scan", "cross_merge",
           "cross_scan_channels_last", "cross_merge_channels_last", "cross_scan_3d", "cross_merge_3d",
           "cross_scan_3d_channels_last", "cross_merge_3d_channels_last", "ScanDirections", "IMAGE_DIRECTIONS",
           "volume_directions", "scan_backend", "ScanBackend"]

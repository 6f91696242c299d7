"""The SS2D core: selective scan (several backends) and the 4-direction cross scan / merge.

PLACEHOLDER until the ops work lands: ``selective_scan`` runs the reference loop.
"""
from nnunetv2_mamba.ops.scan_reference import selective_scan_reference


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend=None):
    return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def cross_scan(x):
    """(B, C, H, W) -> (B, 4, C, H*W): row-major, column-major, and both reversed."""
    import torch
    rows = x.flatten(2)
    cols = x.transpose(2, 3).flatten(2)
    xs = torch.stack([rows, cols], dim=1)
    return torch.cat([xs, xs.flip(-1)], dim=1)


def cross_merge(ys, H, W):
    """(B, 4, C, H*W) -> (B, C, H*W) row-major sum of the 4 directions (inverse of cross_scan up to 4x)."""
    B, _, C, L = ys.shape
    ys = ys[:, 0:2] + ys[:, 2:4].flip(-1)
    return ys[:, 0] + ys[:, 1].view(B, C, W, H).transpose(2, 3).reshape(B, C, L)

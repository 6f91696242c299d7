"""Slow, obviously-correct selective scan: one Python step per time step, autograd does the backward.

Semantics are mamba-ssm's ``selective_scan_ref`` (docs/architecture.md, "The selective scan"); this is the yardstick every fast
backend is tested against, never used for training.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _expand_groups(BC: torch.Tensor, d: int) -> torch.Tensor:
    """(b, N, L) or (b, G, N, L) -> (b, d, N, L): channel i uses group i // (d // G)."""
    if BC.dim() == 3:
        BC = BC.unsqueeze(1)
    groups = BC.shape[1]
    if d % groups:
        raise ValueError(f"{d} channels cannot be split into {groups} B/C groups")
    return BC.repeat_interleave(d // groups, dim=1)


def selective_scan_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                             return_last_state=False):
    """u, delta, z: (b, d, L); A: (d, N); B, C: (b, N, L) or (b, G, N, L); D, delta_bias: (d,).

    Returns y (b, d, L) in delta's dtype, and the fp32 last state (b, d, N) if ``return_last_state``.
    """
    out_dtype = delta.dtype
    u, delta, A = u.float(), delta.float(), A.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    b, d, L = u.shape
    Bx = _expand_groups(B.float(), d)
    Cx = _expand_groups(C.float(), d)
    h = u.new_zeros(b, d, A.shape[1])
    ys = []
    # unbind (not [..., t]) so that autograd's backward stays linear in L
    for delta_t, u_t, B_t, C_t in zip(delta.unbind(-1), u.unbind(-1), Bx.unbind(-1), Cx.unbind(-1)):
        decay = torch.exp(delta_t[..., None] * A)
        h = decay * h + (delta_t * u_t)[..., None] * B_t
        ys.append((h * C_t).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(out_dtype)
    return (y, h) if return_last_state else y

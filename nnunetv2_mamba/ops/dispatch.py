"""``selective_scan``: checks the shapes once, resolves the backend's name (:func:`~.backends.scan_backend`), then
runs it (:func:`scan_on`, which the mixers call with the :class:`~.backends.ScanBackend` they keep): through the
registered operator of :mod:`.scan_op` when no gradient is needed or ``torch.compile`` is tracing, else through the
backend's own autograd function."""
from __future__ import annotations

import torch

from nnunetv2_mamba.ops.backends import ScanBackend, compiling, scan_backend
from nnunetv2_mamba.ops.scan_op import DIFFERENTIABLE, selective_scan_op


def check_scan_inputs(u, delta, A, B, C, D=None, z=None, delta_bias=None) -> None:
    """Raise one ValueError naming the offending argument if the shapes do not follow mamba-ssm's contract."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be (batch, channels, length), got {tuple(u.shape)} and "
                         f"{tuple(delta.shape)}")
    batch, channels, length = u.shape
    if A.dim() != 2 or A.shape[0] != channels or A.is_complex():
        raise ValueError(f"A must be real (channels={channels}, d_state), got {tuple(A.shape)} {A.dtype}")
    d_state = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        groups = t.shape[1] if t.dim() == 4 else 1
        if (t.dim() not in (3, 4) or t.shape[0] != batch or t.shape[-2:] != (d_state, length)
                or channels % groups):
            raise ValueError(f"{name} must be time-variant ({batch}, {d_state}, {length}) or "
                             f"({batch}, groups, {d_state}, {length}) with groups dividing {channels}, "
                             f"got {tuple(t.shape)}")
    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is not None and t.shape != (channels,):
            raise ValueError(f"{name} must be ({channels},), got {tuple(t.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"z must be shaped like u {tuple(u.shape)}, got {tuple(z.shape)}")


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend=None):
    """mamba-ssm's ``selective_scan_fn``: h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t, y_t = <h_t, C_t> + D u_t.

    u, delta, z: (b, d, L); A: (d, N); B, C: (b, N, L) or (b, G, N, L); D, delta_bias: (d,).
    Δ = softplus(delta + delta_bias) if ``delta_softplus``; y is multiplied by silu(z) when z is given.
    Returns y (b, d, L) in delta's dtype, plus the fp32 last state (b, d, N) if ``return_last_state``.
    ``backend``: "auto", "cuda", "triton", "cpu", "torch" or None (= $nnUNet_mamba_scan, default auto).
    """
    check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    return scan_on(scan_backend(u.device, backend), u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                   return_last_state)


def scan_on(backend: ScanBackend, u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
            return_last_state=False):
    """:func:`selective_scan` on an already chosen ``backend`` (shapes as checked there, not checked again)."""
    tensors = (u, delta, A, B, C, D, z, delta_bias)
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    if not return_last_state and (not needs_grad or (DIFFERENTIABLE and compiling())):
        return selective_scan_op(*tensors, delta_softplus, backend.name)
    return backend.scan(*tensors, delta_softplus, return_last_state)

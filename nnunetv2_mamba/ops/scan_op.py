"""The forward-only selective scan as a registered torch operator, ``torch.ops.nnunetv2_mamba.selective_scan``.

Calls that need no gradient (inference, FLOP counting) go through this operator instead of a backend's autograd
function. Being an operator, the scan is one opaque node to torch's dispatch modes: ``FlopCounterMode`` counts it
with the formula given in ``FLOP_FORMULAS`` (pass it as ``custom_mapping``) instead of the element-wise recurrence
it cannot see (or, for the torch backend, the matmuls inside it). It is defined with ``torch.library.Library``
rather than ``custom_op``, whose wrapper imports torch._dynamo (and with it triton, which must stay optional).
"""
from __future__ import annotations

import torch

_LIBRARY = torch.library.Library("nnunetv2_mamba", "DEF")
_LIBRARY.define("selective_scan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z, "
                "Tensor? delta_bias, bool delta_softplus, str backend) -> Tensor")


def _run_backend(u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend):
    """y (b, d, L) of ``selective_scan(...)`` on an already chosen ``backend``; forward only."""
    from nnunetv2_mamba.ops.backends import availability

    return availability(backend).function(u, delta, A, B, C, D, z, delta_bias, delta_softplus, False)


def _shape_only(u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend):
    return torch.empty_like(delta, memory_format=torch.contiguous_format)


_LIBRARY.impl("selective_scan", _run_backend, "CompositeExplicitAutograd")
_LIBRARY.impl("selective_scan", _shape_only, "Meta")


def selective_scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus: bool, backend: str):
    """y (b, d, L) of ``selective_scan`` through the registered operator; for calls that need no gradient."""
    return torch.ops.nnunetv2_mamba.selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend)


def scan_flops(u_shape, A_shape) -> int:
    """9·b·L·d·N for u (b, d, L) and A (d, N): the count VMamba's FLOP counter uses for one selective scan."""
    batch, channels, length = u_shape
    return 9 * batch * length * channels * A_shape[1]


def _selective_scan_flops(u_shape, delta_shape, A_shape, *args, out_shape=None, **kwargs) -> int:
    return scan_flops(u_shape, A_shape)


#: ``FlopCounterMode(custom_mapping=FLOP_FORMULAS)`` counts the scan operator (importing torch's flop counter here
#: would import triton, which must stay optional).
FLOP_FORMULAS = {torch.ops.nnunetv2_mamba.selective_scan: _selective_scan_flops}

"""The selective scan as a registered torch operator, ``torch.ops.nnunetv2_mamba.selective_scan``.

Calls that need no gradient (inference, FLOP counting), and under ``torch.compile`` every call, go through this
operator instead of a backend's autograd function (:mod:`.dispatch`). Being an operator, the scan is one opaque node
to torch's dispatch modes and to ``torch.compile``: ``FlopCounterMode`` counts it with the formula given in
``FLOP_FORMULAS`` (pass it as ``custom_mapping``) instead of the element-wise recurrence it cannot see, and Dynamo
neither traces into the backends (ctypes, Triton launches, Python loops) nor breaks the graph there.

Output layout: y (b, d, L) in delta's dtype is a view of (b, L, d) memory when u is channels-last (channel stride 1,
d and L > 1), contiguous otherwise (:func:`output_strides`), whichever backend runs; the Meta kernel gives the same
strides, so the compiler's picture of y is the real one. Its gradient is the operator ``selective_scan_backward``,
which recomputes the backend's forward with autograd and returns each input's gradient in that input's layout
(one more scan forward per backward than the backends' own autograd functions, which eager training uses; torch
>= 2.4, see :data:`DIFFERENTIABLE`).
Both are defined with ``torch.library.Library`` rather than ``custom_op``, whose wrapper imports torch._dynamo (and
with it triton, which must stay optional).
"""
from __future__ import annotations

import torch

_LIBRARY = torch.library.Library("nnunetv2_mamba", "DEF")
_ARGUMENTS = ("Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z, Tensor? delta_bias, "
              "bool delta_softplus, str backend")
_LIBRARY.define(f"selective_scan({_ARGUMENTS}) -> Tensor")
_LIBRARY.define(f"selective_scan_backward(Tensor grad, {_ARGUMENTS}) -> Tensor[]")


def output_strides(u: torch.Tensor) -> tuple[int, int, int]:
    """Strides of y (b, d, L): (d·L, 1, d) for channels-last u (channel stride 1, d > 1, L > 1), else contiguous."""
    _, channels, length = u.shape
    if u.stride(1) == 1 and channels > 1 and length > 1:
        return channels * length, 1, channels
    return channels * length, length, 1


def _with_strides(t: torch.Tensor, strides, dtype: torch.dtype) -> torch.Tensor:
    """``t`` itself if it already has ``strides`` and ``dtype``, else a copy that has them."""
    if tuple(t.stride()) == tuple(strides) and t.dtype == dtype:
        return t
    return torch.empty_strided(t.shape, strides, dtype=dtype, device=t.device).copy_(t)


def _like_strides(t: torch.Tensor) -> tuple[int, ...]:
    """The strides ``torch.empty_like(t)`` gives (without allocating)."""
    return torch.empty_like(t, device="meta").stride()


def _function(backend: str):
    """The scan function of the backend named ``backend``, already chosen (an operator carries names, not functions;
    this is a cached look-up, no probe or smoke test runs here)."""
    from nnunetv2_mamba.ops.backends import availability

    return availability(backend).function


def _run_backend(u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend):
    """y (b, d, L) of ``selective_scan(...)`` on an already chosen ``backend``, in :func:`output_strides`."""
    with torch.no_grad():
        y = _function(backend)(u, delta, A, B, C, D, z, delta_bias, delta_softplus, False)
    return _with_strides(y, output_strides(u), delta.dtype)


def _shape_only(u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend):
    return delta.new_empty_strided(u.shape, output_strides(u))


def _inputs_and_gradients(grad, inputs, delta_softplus, backend):
    """The gradients of <y, grad> for the given (not None) ``inputs``, recomputing the backend's forward."""
    leaves = [None if t is None else t.detach().requires_grad_() for t in inputs]
    with torch.enable_grad():
        y = _function(backend)(*leaves, delta_softplus, False)
    return iter(torch.autograd.grad(y, [t for t in leaves if t is not None], grad))


def _run_backward(grad, u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend):
    """[du, ddelta, dA, dB, dC, dD, dz, ddelta_bias], each in its input's layout and dtype; an empty tensor where
    the input is None."""
    inputs = (u, delta, A, B, C, D, z, delta_bias)
    gradients = _inputs_and_gradients(grad, inputs, delta_softplus, backend)
    return [u.new_empty(0) if t is None else _with_strides(next(gradients), _like_strides(t), t.dtype)
            for t in inputs]


def _backward_shape_only(grad, u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend):
    return [u.new_empty(0) if t is None else torch.empty_like(t) for t in (u, delta, A, B, C, D, z, delta_bias)]


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:8])
    ctx.delta_softplus, ctx.backend = inputs[8], inputs[9]


def _backward(ctx, grad):
    inputs = ctx.saved_tensors
    gradients = torch.ops.nnunetv2_mamba.selective_scan_backward(grad, *inputs, ctx.delta_softplus, ctx.backend)
    return (*(None if t is None else g for t, g in zip(inputs, gradients)), None, None)


_LIBRARY.impl("selective_scan", _run_backend, "CompositeExplicitAutograd")
_LIBRARY.impl("selective_scan", _shape_only, "Meta")
_LIBRARY.impl("selective_scan_backward", _run_backward, "CompositeExplicitAutograd")
_LIBRARY.impl("selective_scan_backward", _backward_shape_only, "Meta")
#: whether the operator has its backward: torch >= 2.4 (``torch.library.register_autograd``); on older torch it is
#: forward-only, and calls that need a gradient take the backends' autograd functions, also under torch.compile
DIFFERENTIABLE = hasattr(torch.library, "register_autograd")
if DIFFERENTIABLE:
    torch.library.register_autograd("nnunetv2_mamba::selective_scan", _backward, setup_context=_setup_context,
                                    lib=_LIBRARY)


def selective_scan_op(u, delta, A, B, C, D, z, delta_bias, delta_softplus: bool, backend: str):
    """y (b, d, L) of ``selective_scan`` through the registered operator (layout: :func:`output_strides`)."""
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

"""Compiled CPU selective scan (backend ``cpu``): mamba-ssm ``selective_scan_fn`` semantics, forward and backward.

One C kernel (``scan_cpu.c``, built by :mod:`.cpu_kernel`) per direction of autograd, each ONE OpenMP parallel
region over work items claimed dynamically: the forward's items are (batch, block of 16 channels of one B/C
group), the backward's (batch, group, slab of blocks). Each item runs the time loop itself with the block's
(N, 16) state in L1, vectorised over the 16 channels; delta_bias, softplus, D and z are fused in. The forward
saves the state every ``SEGMENT`` positions; the backward recomputes one segment at a time from it into a
per-thread buffer and sweeps it in reverse. dA, dD, d(delta_bias) come back per batch element and dB, dC per
(batch, group, slab), so no two threads ever write the same memory; torch sums the partials.

Layout: u, delta, z (b, d, L) with any strides; the kernel reads channels contiguously, so a tensor whose
channel stride is not 1 is copied once into (b, L, d) memory. Channels-last views (stride(1) == 1, what SS2D's
channels-last path passes) are read in place, and y comes back in u's layout (a (b, d, L) view of (b, L, d)
memory for channels-last u, contiguous otherwise). B, C are read as (b, G, L, N) memory (state stride 1), copied
once if they are not.

Why C and not numba, measured on this project's 2-core AMD EPYC (AVX2) with 2 threads, forward only, fp32,
B=2, K=4, N=16: numba 0.68 (``@njit(parallel=True, fastmath=True)``, the same loop nest) 0.042 s at D=96,
L=784 and 0.49 s at D=192, L=3136; the C kernel 0.0056 s and 0.042 s (7-12x faster: numba's ``math.exp`` is a
scalar call without Intel's SVML, the C kernel's exp vectorises), and numba's first call compiles for 5.7 s
against gcc's 1 s. The torch scan took 0.047 s and 0.21 s in the same runs.
"""
from __future__ import annotations

import ctypes

import torch
from torch.autograd.function import once_differentiable

from nnunetv2_mamba.ops import cpu_kernel

LANES = 16  # channels per block, as in scan_cpu.c
#: positions between two states saved by the forward: the backward's per-thread buffer holds 2 x SEGMENT x N x 16
#: values (128 KiB in fp32 at N = 16, within L2); the saved states are N / SEGMENT = 1/4 of u's size at N = 16
SEGMENT = 64
#: the backward aims at this many work items per thread, so that a thread the OS deschedules holds up little
ITEMS_PER_THREAD = 8
#: state updates (b * d * L * N) per thread below which a call uses fewer threads: joining a parallel region
#: costs microseconds on an idle machine and up to a scheduler time slice on a loaded one
GRAIN = 1 << 18


def _channels_inner(t: torch.Tensor) -> torch.Tensor:
    """(b, d, L) with channel stride 1 (a view when it already has it, else one copy into (b, L, d) memory)."""
    return t if t.stride(1) == 1 or t.shape[1] == 1 else t.transpose(1, 2).contiguous().transpose(1, 2)


def _state_inner(t: torch.Tensor) -> torch.Tensor:
    """(b, G, N, L) with state stride 1 (a view, or one copy into (b, G, L, N) memory)."""
    return t if t.stride(2) == 1 or t.shape[2] == 1 else t.transpose(2, 3).contiguous().transpose(2, 3)


def _pointer(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _threads(u: torch.Tensor, d_state: int) -> int:
    """torch's CPU thread count, fewer for small scans (GRAIN state updates per thread at least)."""
    return max(1, min(torch.get_num_threads(), u.numel() * d_state // GRAIN))


def _shape(u, delta, B, C, z, grad, delta_softplus: bool, slabs: int = 1) -> cpu_kernel.ScanShape:
    (b, d, L), (groups, N) = u.shape, B.shape[1:3]
    z_strides = (z.stride(0), z.stride(2)) if z is not None else (0, 0)
    grad_strides = (grad.stride(0), grad.stride(2)) if grad is not None else (0, 0)
    return cpu_kernel.ScanShape(b, d, L, N, groups, SEGMENT, slabs, _threads(u, N), int(delta_softplus),
                                u.stride(0), u.stride(2), delta.stride(0), delta.stride(2), *z_strides,
                                *grad_strides, B.stride(0), B.stride(1), B.stride(3), C.stride(0), C.stride(1),
                                C.stride(3))


def _blocks_per_group(d: int, groups: int) -> int:
    return -(-(d // groups) // LANES)


def _kernel(name: str, dtype: torch.dtype):
    return getattr(cpu_kernel.load(), f"scan_{name}_{'f64' if dtype == torch.float64 else 'f32'}")


def _run(function, shape, *tensors) -> None:
    if function(ctypes.byref(shape), *map(_pointer, tensors)):
        raise MemoryError("the CPU selective-scan kernel could not allocate its per-thread buffers")


class CpuScan(torch.autograd.Function):
    """fp32 or fp64 (all inputs one dtype, on the CPU): u, delta, z (b, d, L) with channel stride 1; A (d, N);
    B, C (b, G, N, L) with state stride 1; D, delta_bias (d,) or None -> y (b, d, L) in u's layout, last state
    (b, d, N)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus: bool, save_states: bool):
        (b, d, L), N = u.shape, A.shape[1]
        A_t = A.t().contiguous()
        out, last_state = u.new_empty(b, L, d), u.new_empty(b, d, N)
        segments = -(-L // SEGMENT)
        states = (u.new_empty(b, B.shape[1] * _blocks_per_group(d, B.shape[1]), segments, N, LANES)
                  if save_states else None)
        _run(_kernel("forward", u.dtype), _shape(u, delta, B, C, z, None, delta_softplus),
             u, delta, A_t, B, C, D, z, delta_bias, out, last_state, states)
        ctx.delta_softplus = delta_softplus
        ctx.save_for_backward(u, delta, A_t, B, C, D, z, delta_bias, states)
        ctx.mark_non_differentiable(last_state)
        return out.transpose(1, 2), last_state

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, _grad_last_state):
        u, delta, A_t, B, C, D, z, delta_bias, states = ctx.saved_tensors
        if states is None:
            raise RuntimeError("the CPU scan's forward ran without saving states for a backward")
        (b, d, L), (groups, N) = u.shape, B.shape[1:3]
        grad_out = _channels_inner(grad_out.to(u.dtype))
        blocks = _blocks_per_group(d, groups)
        slabs = max(1, min(blocks, -(-ITEMS_PER_THREAD * _threads(u, N) // (b * groups))))
        du, ddelta = u.new_empty(b, L, d), u.new_empty(b, L, d)
        dz = u.new_empty(b, L, d) if z is not None else None
        dA, dB, dC = u.new_empty(b, N, d), u.new_empty(b, groups, slabs, L, N), u.new_empty(b, groups, slabs, L, N)
        dD = u.new_empty(b, d) if D is not None else None
        dbias = u.new_empty(b, d) if delta_bias is not None else None
        _run(_kernel("backward", u.dtype), _shape(u, delta, B, C, z, grad_out, ctx.delta_softplus, slabs),
             u, delta, A_t, B, C, D, z, delta_bias, states, grad_out, du, ddelta, dz, dA, dD, dbias, dB, dC)
        as_input = lambda t: t.transpose(1, 2)  # noqa: E731  (b, L, d) -> (b, d, L)
        return (as_input(du), as_input(ddelta), dA.sum(0).t(), dB.sum(2).transpose(2, 3),
                dC.sum(2).transpose(2, 3), None if dD is None else dD.sum(0), None if dz is None else as_input(dz),
                None if dbias is None else dbias.sum(0), None, None)


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """mamba-ssm ``selective_scan_fn`` semantics with the compiled CPU kernel (CPU tensors only).

    u, delta, z: (b, d, L); A: (d, N) real; B, C: (b, N, L) or (b, G, N, L); D, delta_bias: (d,).
    Returns y (b, d, L) in delta's dtype (in u's memory layout), plus the last state (b, d, N) if
    ``return_last_state``. The arithmetic and the state are fp32 (fp64 for fp64 delta), also for half inputs and
    under autocast.
    """
    if u.device.type != "cpu":
        raise ValueError(f"the cpu selective-scan backend takes CPU tensors, got {u.device.type} tensors")
    out_dtype = delta.dtype
    dtype = torch.float64 if out_dtype == torch.float64 else torch.float32
    channels_last = u.stride(1) == 1 and u.shape[2] > 1
    with torch.autocast(device_type="cpu", enabled=False):
        B, C = (t.unsqueeze(1) if t.dim() == 3 else t for t in (B, C))
        u, delta, z = (None if t is None else _channels_inner(t.to(dtype)) for t in (u, delta, z))
        B, C = (_state_inner(t.to(dtype)) for t in (B, C))
        A, D, delta_bias = (None if t is None else t.to(dtype).contiguous() for t in (A, D, delta_bias))
        tensors = (u, delta, A, B, C, D, z, delta_bias)
        save_states = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
        y, last_state = CpuScan.apply(*tensors, bool(delta_softplus), save_states)
    y = (y if channels_last else y.contiguous()).to(out_dtype)
    return (y, last_state) if return_last_state else y

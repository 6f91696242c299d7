"""Selective scan in Triton: a chunked forward kernel and a reverse-time backward kernel.

Semantics, shapes and dtypes are mamba-ssm's ``selective_scan_fn`` (docs/architecture.md, "The selective scan"); the yardstick is
``nnunetv2_mamba.ops.scan_reference.selective_scan_reference``.

Work split: one program per (batch, block of ``BLOCK_D`` channels of one B/C group). Time is walked in chunks of
``BLOCK_L`` steps; inside a chunk the recurrence ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t`` is a
``tl.associative_scan`` over a (BLOCK_D, N, BLOCK_L) tile, seeded with the state carried from the previous chunk.
The forward stores only the state at every chunk end (fp32, (b, d, n_chunks, N)); the backward walks the chunks in
reverse, recomputes the chunk's states from the stored one before it, and runs the adjoint recurrence
``g_t = exp(dt_{t+1} A) g_{t+1} + dy_t C_t`` as a forward associative scan over the chunk read backwards in time
(its terms loaded in reverse order), whose result goes back to time order through a per-program scratch tile: no
kernel needs ``associative_scan(reverse=True)`` or ``tl.flip``, which Triton before 3.0 lacks (and reverse scans
with a two-operand combine have had wrong-result reports upstream). dA, dD and ddelta_bias are summed per program
and written per batch; dB and dC are written per channel block, (b, G, blocks, N, L) in fp32 each, and both are then
summed in torch (deterministic, no atomics). That workspace, about 8x the size of u at the networks' shapes, is in
the planner's memory model (``ops/triton_blocks.py``). Every launch runs under its input's CUDA device.

Triton is optional: if it cannot be imported ``TRITON_AVAILABLE`` is False, ``TRITON_UNAVAILABLE_REASON`` says why,
and calling the op raises. Kernels run compiled on CUDA tensors, and on CPU tensors only under Triton's interpreter
(``TRITON_INTERPRET=1`` set before this module is imported), which is how the tests check them without a GPU.
"""
from __future__ import annotations

import contextlib

import torch

from nnunetv2_mamba.ops.triton_blocks import DEFAULT_BLOCK_L, block_sizes

try:
    import triton
    import triton.language as tl
except Exception as error:  # missing or broken install: the op is simply unavailable
    triton = tl = None
    TRITON_AVAILABLE = False
    TRITON_UNAVAILABLE_REASON = f"triton cannot be imported: {type(error).__name__}: {error}"
else:
    TRITON_AVAILABLE = True
    TRITON_UNAVAILABLE_REASON = ""

MAX_STATE_SIZE = 256

if TRITON_AVAILABLE:

    @triton.jit
    def _linear_recurrence_combine(decay_left, value_left, decay_right, value_right):
        """Composes h -> decay_left * h + value_left, then h -> decay_right * h + value_right."""
        return decay_left * decay_right, decay_right * value_left + value_right

    @triton.jit
    def _softplus(x):
        return tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(tl.minimum(x, 20.0))))

    @triton.jit
    def _chunk_states(dt, u, A, Bt, state, time_mask):
        """States h (BLOCK_D, BLOCK_N, BLOCK_L) of one chunk from the state before it, and their drive dt·u·B."""
        decay = tl.exp(dt[:, None, :] * A[:, :, None])
        decay = tl.where(time_mask[None, None, :], decay, 1.0)  # steps past L keep the state unchanged
        drive = (dt * u)[:, None, :] * Bt[None, :, :]
        decay_prod, drive_sum = tl.associative_scan((decay, drive), 2, _linear_recurrence_combine)
        return decay_prod * state[:, :, None] + drive_sum, drive

    @triton.jit
    def _selective_scan_fwd_kernel(
            u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, delta_bias_ptr, out_ptr, states_ptr,
            L, n_chunks, channels_per_group, n_groups, d_state, blocks_per_group,
            HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_DELTA_BIAS: tl.constexpr, DELTA_SOFTPLUS: tl.constexpr,
            BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
        pid_block = tl.program_id(0)
        batch = tl.program_id(1).to(tl.int64)
        group = pid_block // blocks_per_group
        local = (pid_block % blocks_per_group) * BLOCK_D + tl.arange(0, BLOCK_D)
        channel_mask = local < channels_per_group
        channel = group * channels_per_group + local
        n_channels = n_groups * channels_per_group
        offs_n = tl.arange(0, BLOCK_N)
        state_mask = offs_n < d_state
        offs_l = tl.arange(0, BLOCK_L)

        A = tl.load(A_ptr + channel[:, None] * d_state + offs_n[None, :],
                    mask=channel_mask[:, None] & state_mask[None, :], other=0.0)
        if HAS_D:
            D = tl.load(D_ptr + channel, mask=channel_mask, other=0.0)
        if HAS_DELTA_BIAS:
            delta_bias = tl.load(delta_bias_ptr + channel, mask=channel_mask, other=0.0)
        row = (batch * n_channels + channel)[:, None] * L  # (BLOCK_D, 1) offsets of the (b, d, L) rows
        bc_row = ((batch * n_groups + group) * d_state + offs_n)[:, None] * L  # (BLOCK_N, 1) rows of B and C
        state_row = ((batch * n_channels + channel) * n_chunks)[:, None] * d_state + offs_n[None, :]
        last_step = (offs_l == BLOCK_L - 1)[None, None, :]

        state = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        for chunk in range(0, n_chunks):
            t = chunk * BLOCK_L + offs_l
            time_mask = t < L
            dl_mask = channel_mask[:, None] & time_mask[None, :]
            nl_mask = state_mask[:, None] & time_mask[None, :]
            u = tl.load(u_ptr + row + t[None, :], mask=dl_mask, other=0.0).to(tl.float32)
            dt = tl.load(delta_ptr + row + t[None, :], mask=dl_mask, other=0.0).to(tl.float32)
            if HAS_DELTA_BIAS:
                dt += delta_bias[:, None]
            if DELTA_SOFTPLUS:
                dt = _softplus(dt)
            Bt = tl.load(B_ptr + bc_row + t[None, :], mask=nl_mask, other=0.0).to(tl.float32)
            Ct = tl.load(C_ptr + bc_row + t[None, :], mask=nl_mask, other=0.0).to(tl.float32)

            h, _ = _chunk_states(dt, u, A, Bt, state, time_mask)

            y = tl.sum(h * Ct[None, :, :], axis=1)
            if HAS_D:
                y += D[:, None] * u
            if HAS_Z:
                z = tl.load(z_ptr + row + t[None, :], mask=dl_mask, other=0.0).to(tl.float32)
                y *= z * tl.sigmoid(z)
            tl.store(out_ptr + row + t[None, :], y.to(out_ptr.dtype.element_ty), mask=dl_mask)

            state = tl.sum(tl.where(last_step, h, 0.0), axis=2)
            tl.store(states_ptr + state_row + chunk * d_state, state,
                     mask=channel_mask[:, None] & state_mask[None, :])

    @triton.jit
    def _adjoint_terms_backwards(delta_ptr, dout_ptr, z_ptr, C_ptr, row, bc_row, t, L, A, delta_bias, channel_mask,
                                 state_mask, HAS_Z: tl.constexpr, HAS_DELTA_BIAS: tl.constexpr,
                                 DELTA_SOFTPLUS: tl.constexpr):
        """(exp(dt_{t+1} A), dy_t C_t), each (BLOCK_D, BLOCK_N, BLOCK_L), at the positions ``t`` (a chunk read
        backwards): the terms of g_t = exp(dt_{t+1} A) g_{t+1} + dy_t C_t. Zero decay at t = L - 1 (no g_L) and
        zero terms past L."""
        time_mask = t < L
        dl_mask = channel_mask[:, None] & time_mask[None, :]
        dt_next = tl.load(delta_ptr + row + t[None, :] + 1, mask=channel_mask[:, None] & (t + 1 < L)[None, :],
                          other=0.0).to(tl.float32)
        if HAS_DELTA_BIAS:
            dt_next += delta_bias[:, None]
        if DELTA_SOFTPLUS:
            dt_next = _softplus(dt_next)
        decay_next = tl.where((t + 1 < L)[None, None, :], tl.exp(dt_next[:, None, :] * A[:, :, None]), 0.0)
        dy = tl.load(dout_ptr + row + t[None, :], mask=dl_mask, other=0.0).to(tl.float32)
        if HAS_Z:
            z = tl.load(z_ptr + row + t[None, :], mask=dl_mask, other=0.0).to(tl.float32)
            dy = dy * z * tl.sigmoid(z)
        Ct = tl.load(C_ptr + bc_row + t[None, :], mask=state_mask[:, None] & time_mask[None, :],
                     other=0.0).to(tl.float32)
        return decay_next, dy[:, None, :] * Ct[None, :, :]

    @triton.jit
    def _selective_scan_bwd_kernel(
            u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, delta_bias_ptr, states_ptr, dout_ptr,
            du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, ddelta_bias_ptr, scratch_ptr,
            L, n_chunks, channels_per_group, n_groups, d_state, blocks_per_group,
            HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_DELTA_BIAS: tl.constexpr, DELTA_SOFTPLUS: tl.constexpr,
            BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
        pid_block = tl.program_id(0)
        batch = tl.program_id(1).to(tl.int64)
        group = pid_block // blocks_per_group
        block = pid_block % blocks_per_group
        local = block * BLOCK_D + tl.arange(0, BLOCK_D)
        channel_mask = local < channels_per_group
        channel = group * channels_per_group + local
        n_channels = n_groups * channels_per_group
        offs_n = tl.arange(0, BLOCK_N)
        state_mask = offs_n < d_state
        dn_mask = channel_mask[:, None] & state_mask[None, :]
        offs_l = tl.arange(0, BLOCK_L)

        A = tl.load(A_ptr + channel[:, None] * d_state + offs_n[None, :], mask=dn_mask, other=0.0)
        if HAS_D:
            D = tl.load(D_ptr + channel, mask=channel_mask, other=0.0)
        delta_bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
        if HAS_DELTA_BIAS:
            delta_bias = tl.load(delta_bias_ptr + channel, mask=channel_mask, other=0.0)
        row = (batch * n_channels + channel)[:, None] * L
        bc_row = ((batch * n_groups + group) * d_state + offs_n)[:, None] * L
        partial_row = (((batch * n_groups + group) * blocks_per_group + block) * d_state + offs_n)[:, None] * L
        state_row = ((batch * n_channels + channel) * n_chunks)[:, None] * d_state + offs_n[None, :]
        last_step = (offs_l == BLOCK_L - 1)[None, None, :]
        tile = ((tl.arange(0, BLOCK_D)[:, None, None] * BLOCK_N + offs_n[None, :, None]) * BLOCK_L
                + offs_l[None, None, :])
        reversed_tile = tile + (BLOCK_L - 1 - 2 * offs_l)[None, None, :]  # the same element, time reversed
        scratch = scratch_ptr + (batch * tl.num_programs(0) + pid_block) * (BLOCK_D * BLOCK_N * BLOCK_L)

        grad_carry = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)  # dL/dh at the first step of the next chunk
        dA_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
        ddelta_bias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
        for step in range(0, n_chunks):
            chunk = n_chunks - 1 - step
            t = chunk * BLOCK_L + offs_l
            time_mask = t < L
            dl_mask = channel_mask[:, None] & time_mask[None, :]
            nl_mask = state_mask[:, None] & time_mask[None, :]
            state = tl.load(states_ptr + state_row + tl.maximum(chunk - 1, 0) * d_state,
                            mask=dn_mask & (chunk > 0), other=0.0)

            u = tl.load(u_ptr + row + t[None, :], mask=dl_mask, other=0.0).to(tl.float32)
            dt_raw = tl.load(delta_ptr + row + t[None, :], mask=dl_mask, other=0.0).to(tl.float32)
            if HAS_DELTA_BIAS:
                dt_raw += delta_bias[:, None]
            dt = dt_raw
            if DELTA_SOFTPLUS:
                dt = _softplus(dt_raw)
            Bt = tl.load(B_ptr + bc_row + t[None, :], mask=nl_mask, other=0.0).to(tl.float32)
            Ct = tl.load(C_ptr + bc_row + t[None, :], mask=nl_mask, other=0.0).to(tl.float32)
            dout = tl.load(dout_ptr + row + t[None, :], mask=dl_mask, other=0.0).to(tl.float32)

            # Recompute the chunk's states from the stored state before it.
            h, drive = _chunk_states(dt, u, A, Bt, state, time_mask)

            y = tl.sum(h * Ct[None, :, :], axis=1)
            if HAS_D:
                y += D[:, None] * u
            dy = dout
            if HAS_Z:
                z = tl.load(z_ptr + row + t[None, :], mask=dl_mask, other=0.0).to(tl.float32)
                z_sigmoid = tl.sigmoid(z)
                dz = dout * y * z_sigmoid * (1.0 + z * (1.0 - z_sigmoid))
                tl.store(dz_ptr + row + t[None, :], dz.to(dz_ptr.dtype.element_ty), mask=dl_mask)
                dy = dout * z * z_sigmoid

            # Adjoint recurrence g_t = exp(dt_{t+1} A) g_{t+1} + dy_t C_t, seeded with the next chunk's g: a forward
            # scan over the chunk read backwards in time (tile index i is time t_back[i]), brought back to time order
            # through this program's scratch tile.
            t_back = chunk * BLOCK_L + (BLOCK_L - 1 - offs_l)
            decay_back, source_back = _adjoint_terms_backwards(
                delta_ptr, dout_ptr, z_ptr, C_ptr, row, bc_row, t_back, L, A, delta_bias, channel_mask, state_mask,
                HAS_Z, HAS_DELTA_BIAS, DELTA_SOFTPLUS)
            decay_prod, source_sum = tl.associative_scan((decay_back, source_back), 2, _linear_recurrence_combine)
            g_back = source_sum + decay_prod * grad_carry[:, :, None]
            grad_carry = tl.sum(tl.where(last_step, g_back, 0.0), axis=2)  # g at the chunk's first position
            tl.store(scratch + reversed_tile, g_back)
            tl.debug_barrier()
            g = tl.load(scratch + tile)
            tl.debug_barrier()  # every thread has read its g before the next chunk overwrites the scratch tile

            decayed_previous = h - drive  # exp(dt_t A) * h_{t-1}, without dividing by a possibly tiny decay
            dC_part = tl.sum(dy[:, None, :] * h, axis=0)
            dB_part = tl.sum(g * (dt * u)[:, None, :], axis=0)
            tl.store(dC_ptr + partial_row + t[None, :], dC_part, mask=nl_mask)
            tl.store(dB_ptr + partial_row + t[None, :], dB_part, mask=nl_mask)

            du = tl.sum(g * Bt[None, :, :], axis=1) * dt
            if HAS_D:
                du += D[:, None] * dy
                dD_acc += tl.sum(dy * u, axis=1)
            tl.store(du_ptr + row + t[None, :], du.to(du_ptr.dtype.element_ty), mask=dl_mask)
            ddt = tl.sum(g * (u[:, None, :] * Bt[None, :, :] + decayed_previous * A[:, :, None]), axis=1)
            dA_acc += tl.sum(g * decayed_previous * dt[:, None, :], axis=2)
            ddelta = ddt
            if DELTA_SOFTPLUS:
                ddelta = ddt * tl.sigmoid(dt_raw)
            ddelta = tl.where(dl_mask, ddelta, 0.0)
            ddelta_bias_acc += tl.sum(ddelta, axis=1)
            tl.store(ddelta_ptr + row + t[None, :], ddelta.to(ddelta_ptr.dtype.element_ty), mask=dl_mask)

        per_batch = batch * n_channels + channel
        tl.store(dA_ptr + per_batch[:, None] * d_state + offs_n[None, :], dA_acc, mask=dn_mask)
        if HAS_D:
            tl.store(dD_ptr + per_batch, dD_acc, mask=channel_mask)
        if HAS_DELTA_BIAS:
            tl.store(ddelta_bias_ptr + per_batch, ddelta_bias_acc, mask=channel_mask)


def _interpreted() -> bool:
    """True when the kernels were decorated under ``TRITON_INTERPRET=1`` (they then run on CPU tensors)."""
    return not isinstance(_linear_recurrence_combine, triton.runtime.JITFunction)


def require_triton_device(*tensors: torch.Tensor) -> None:
    """One clear error when Triton is unusable here: not installed, or CPU tensors without the interpreter."""
    if not TRITON_AVAILABLE:
        raise RuntimeError(f"The Triton backend is unavailable ({TRITON_UNAVAILABLE_REASON}); "
                           "install triton or use another scan backend.")
    if not _interpreted() and any(not t.is_cuda for t in tensors):
        raise RuntimeError("The Triton backend needs CUDA tensors; on CPU use the reference or torch backend "
                           "(or set TRITON_INTERPRET=1 before importing this module, to test the kernels slowly).")


def launch_guard(t: torch.Tensor):
    """The context to launch kernels on ``t``'s data in: ``t``'s CUDA device made current (Triton launches on the
    current device, whatever device the pointers belong to); nothing under the interpreter, which runs on the CPU."""
    return contextlib.nullcontext() if _interpreted() else torch.cuda.device(t.device)


def _check_inputs(u, delta, A, B, C, block_l):
    require_triton_device(u, delta, A, B, C)
    if block_l < 1 or block_l & (block_l - 1):
        raise ValueError(f"block_l must be a power of two; got {block_l}.")
    if A.is_complex():
        raise ValueError("The Triton selective scan supports real A only; use the reference backend for complex A.")
    if B.dim() not in (3, 4) or C.dim() not in (3, 4):
        raise ValueError("The Triton selective scan needs input-dependent B and C of shape (b, N, L) or "
                         f"(b, G, N, L); got B {tuple(B.shape)}, C {tuple(C.shape)}.")
    if A.shape[1] > MAX_STATE_SIZE:
        raise ValueError(f"State size N={A.shape[1]} exceeds {MAX_STATE_SIZE}, as in mamba-ssm.")
    if u.shape != delta.shape:
        raise ValueError(f"u {tuple(u.shape)} and delta {tuple(delta.shape)} must have the same shape (b, d, L).")


def _as_groups(BC: torch.Tensor) -> torch.Tensor:
    """(b, N, L) or (b, G, N, L) -> contiguous (b, G, N, L)."""
    return (BC.unsqueeze(1) if BC.dim() == 3 else BC).contiguous()


class SelectiveScanTriton(torch.autograd.Function):
    """Autograd wrapper: Triton forward saves chunk-end states, Triton backward recomputes from them."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, block_l):
        _check_inputs(u, delta, A, B, C, block_l)
        b, d, L = u.shape
        ctx.input_dtypes = (A.dtype, B.dtype, C.dtype, B.dim(), C.dim(),
                            D.dtype if D is not None else None,
                            delta_bias.dtype if delta_bias is not None else None)
        u, delta = u.contiguous(), delta.contiguous()
        A = A.float().contiguous()
        Bg, Cg = _as_groups(B), _as_groups(C)
        n_groups, d_state = Bg.shape[1], A.shape[1]
        if d % n_groups:
            raise ValueError(f"{d} channels cannot be split into {n_groups} B/C groups")
        channels_per_group = d // n_groups
        z = z.contiguous() if z is not None else None
        D_f = D.float().contiguous() if D is not None else None
        bias_f = delta_bias.float().contiguous() if delta_bias is not None else None

        block_d, block_n = block_sizes(d_state, channels_per_group, block_l)
        blocks_per_group = triton.cdiv(channels_per_group, block_d)
        n_chunks = triton.cdiv(L, block_l)
        out = torch.empty_like(delta)
        states = torch.empty(b, d, n_chunks, d_state, device=u.device, dtype=torch.float32)
        with launch_guard(u):
            _selective_scan_fwd_kernel[(n_groups * blocks_per_group, b)](
                u, delta, A, Bg, Cg, D_f if D is not None else A, z if z is not None else u,
                bias_f if delta_bias is not None else A, out, states,
                L, n_chunks, channels_per_group, n_groups, d_state, blocks_per_group,
                HAS_D=D is not None, HAS_Z=z is not None, HAS_DELTA_BIAS=delta_bias is not None,
                DELTA_SOFTPLUS=bool(delta_softplus), BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=block_l)

        ctx.save_for_backward(u, delta, A, Bg, Cg, D_f, z, bias_f, states)
        ctx.launch = (block_d, block_n, block_l, blocks_per_group, n_chunks, bool(delta_softplus))
        if not return_last_state:
            return out
        last_state = states[:, :, -1].clone()
        ctx.mark_non_differentiable(last_state)
        return out, last_state

    @staticmethod
    def backward(ctx, dout, *unused_last_state_grad):
        u, delta, A, Bg, Cg, D_f, z, bias_f, states = ctx.saved_tensors
        A_dtype, B_dtype, C_dtype, B_dim, C_dim, D_dtype, bias_dtype = ctx.input_dtypes
        block_d, block_n, block_l, blocks_per_group, n_chunks, delta_softplus = ctx.launch
        b, d, L = u.shape
        n_groups, d_state = Bg.shape[1], A.shape[1]
        dout = dout.contiguous()
        f32 = dict(device=u.device, dtype=torch.float32)
        du, ddelta = torch.empty_like(u), torch.empty_like(delta)
        dz = torch.empty_like(z) if z is not None else None
        dA = torch.empty(b, d, d_state, **f32)
        dB = torch.empty(b, n_groups, blocks_per_group, d_state, L, **f32)
        dC = torch.empty(b, n_groups, blocks_per_group, d_state, L, **f32)
        dD = torch.empty(b, d, **f32) if D_f is not None else None
        ddelta_bias = torch.empty(b, d, **f32) if bias_f is not None else None
        scratch = torch.empty(b, n_groups * blocks_per_group, block_d * block_n * block_l, **f32)
        with launch_guard(u):
            _selective_scan_bwd_kernel[(n_groups * blocks_per_group, b)](
                u, delta, A, Bg, Cg, D_f if D_f is not None else A, z if z is not None else u,
                bias_f if bias_f is not None else A, states, dout,
                du, ddelta, dz if dz is not None else du, dA, dB, dC,
                dD if dD is not None else dA, ddelta_bias if ddelta_bias is not None else dA, scratch,
                L, n_chunks, d // n_groups, n_groups, d_state, blocks_per_group,
                HAS_D=D_f is not None, HAS_Z=z is not None, HAS_DELTA_BIAS=bias_f is not None,
                DELTA_SOFTPLUS=delta_softplus, BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=block_l)

        dB, dC = dB.sum(2).to(B_dtype), dC.sum(2).to(C_dtype)
        if B_dim == 3:
            dB = dB.squeeze(1)
        if C_dim == 3:
            dC = dC.squeeze(1)
        dD = dD.sum(0).to(D_dtype) if dD is not None else None
        ddelta_bias = ddelta_bias.sum(0).to(bias_dtype) if ddelta_bias is not None else None
        return du, ddelta, dA.sum(0).to(A_dtype), dB, dC, dD, dz, ddelta_bias, None, None, None


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False, block_l: int = DEFAULT_BLOCK_L):
    """mamba-ssm's ``selective_scan_fn`` in Triton.

    u, delta, z: (b, d, L); A: (d, N) fp32; B, C: (b, N, L) or (b, G, N, L); D, delta_bias: (d,) fp32.
    Returns y (b, d, L) in delta's dtype, and the fp32 last state (b, d, N) if ``return_last_state``.
    ``block_l`` (a power of two) is the number of time steps per chunk.
    """
    return SelectiveScanTriton.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                                     block_l)

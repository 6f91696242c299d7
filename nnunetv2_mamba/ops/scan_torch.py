"""Fast pure-PyTorch selective scan (any device), linear in L for forward and backward.

The recurrence ``h_t = a_t * h_{t-1} + x_t`` (a_t = exp(Δ_t A), x_t = Δ_t u_t B_t) is solved in place on a
time-major ``(L, b, G, N, e)`` buffer (e = channels per B/C group, innermost) viewed as ``(n_chunks, T, ...)``:
a sweep over the T positions of all chunks at once gives each chunk's end state from a zero start; a short sweep
over the chunks gives their true start states, using each chunk's total decay ``prod(a)``; a last sweep over the
T positions runs the recurrence from those start states. Only products of factors <= 1: never a division, never
the exp of a positive number.
The backward recomputes the states from the saved inputs, runs the same scan in reverse time for the adjoint
``g_t = C_t gy_t + a_{t+1} g_{t+1}`` and reduces with batched matmuls. Channels are independent, so long inputs
run in channel blocks that cap the size of the buffers.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: upper bound (in elements) of one (L, b, groups, N, channels) fp32 buffer of a channel block: 16 MB stays
#: below glibc's largest mmap threshold (32 MB), so the buffers are recycled instead of page-faulted afresh
BLOCK_ELEMENTS = 1 << 22


def chunk_length(L: int) -> int:
    """Positions per chunk: about sqrt(L), which balances the sweeps over positions and over chunks."""
    return max(1, math.ceil(math.sqrt(L)))


def scan_(a: torch.Tensor, x: torch.Tensor, reverse: bool = False) -> None:
    """In place on (n_chunks, T, ...): x_t <- a_t * x_{t-1} + x_t along the flattened time (n_chunks * T).

    ``reverse`` runs last to first: x_t <- a_t * x_{t+1} + x_t.
    """
    n_chunks, T = x.shape[:2]
    steps = range(T - 1, -1, -1) if reverse else range(T)
    if n_chunks > 1:
        end = torch.zeros_like(x[:, 0])  # each chunk's end state when started from zero
        for t in steps:
            torch.addcmul(x[:, t], a[:, t], end, out=end)
        chunk_decay = a.prod(dim=1)  # factors <= 1: stable
        chunks = range(n_chunks - 1, -1, -1) if reverse else range(n_chunks)
        start = torch.zeros_like(end)  # the true state entering each chunk
        for previous, c in zip(chunks, chunks[1:]):
            torch.addcmul(end[previous], chunk_decay[previous], start[previous], out=start[c])
        x[:, steps[0]].addcmul_(a[:, steps[0]], start)
    for previous, t in zip(steps, steps[1:]):  # all chunks at once, from their true start states
        x[:, t].addcmul_(a[:, t], x[:, previous])


class _ChunkedScan:
    """The core scan of one block of channels, fp32 and time-major, L a multiple of the chunk length T.

    u, delta: (L, b, G, 1, e); A: (G, N, e); B, C: (L, b, G, N, 1) (channels last: they vectorise best).
    ``buffers``: a dict shared by the equally-shaped blocks of one call, so their big buffers are allocated once.
    """

    def __init__(self, u, delta, A, B, C, T, buffers: dict):
        self.u, self.delta, self.A, self.B, self.C, self.T = u, delta, A, B, C, T
        self.L = u.shape[0]
        self.buffers = buffers

    def _chunks(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(self.L // self.T, self.T, *t.shape[1:])

    def _buffer(self, name: str, length: int) -> torch.Tensor:
        """An uninitialised (length, b, G, N, e) buffer, reused across blocks."""
        shape = (length, *self.delta.shape[1:3], *self.A.shape[1:])
        if name not in self.buffers or self.buffers[name].shape != shape:
            self.buffers[name] = self.delta.new_empty(shape)
        return self.buffers[name]

    def decays(self, extra_zero_step: bool = False) -> torch.Tensor:
        """exp(Δ_t A): (L, b, G, N, e), or (L + 1, ...) ending with a zero step (so that [1:] is a_{t+1})."""
        out = self._buffer("decays", self.L + int(extra_zero_step))
        out[self.L:].zero_()
        torch.mul(self.delta, self.A, out=out[:self.L]).exp_()
        return out

    def states(self, decays: torch.Tensor) -> torch.Tensor:
        """All states h_t: (L, b, G, N, e)."""
        h = torch.mul(self.delta * self.u, self.B, out=self._buffer("states", self.L))
        scan_(self._chunks(decays[:self.L]), self._chunks(h))
        return h

    def output(self, h: torch.Tensor) -> torch.Tensor:
        """y_t = <h_t, C_t>: (L, b, G, 1, e)."""
        return torch.matmul(self.C.transpose(-1, -2), h)

    def gradients(self, gy: torch.Tensor):
        """(du, ddelta, dA, dB, dC) shaped like (u, delta, A, B, C) for the output gradient gy (L, b, G, 1, e)."""
        decays = self.decays(extra_zero_step=True)
        h = self.states(decays)
        dC = torch.matmul(h, gy.transpose(-1, -2))
        g = torch.mul(self.C, gy, out=self._buffer("adjoints", self.L))  # dL/dh_t, after the reverse scan below
        scan_(self._chunks(decays[1:]), self._chunks(g), reverse=True)
        delta_u = self.delta * self.u
        dB = torch.matmul(g, delta_u.transpose(-1, -2))
        d_delta_u = torch.matmul(self.B.transpose(-1, -2), g)
        # dL/da_t * a_t = g_t * a_t * h_{t-1} (h_{-1} = 0), in place in the decay buffer
        w = decays[1:self.L].mul_(g[1:]).mul_(h[:-1])
        dA = torch.mul(w, self.delta[1:], out=g[1:]).sum((0, 1))  # g is no longer needed
        d_delta = self.u * d_delta_u
        d_delta[1:] += w.mul_(self.A).sum(-2, keepdim=True)
        return self.delta * d_delta_u, d_delta, dA, dB, dC


def _channel_blocks(b: int, groups: int, per_group: int, N: int, L: int):
    """(group slice, channel-in-group slice) pairs covering all channels, each below BLOCK_ELEMENTS."""
    group_elements = L * b * N * per_group
    if group_elements <= BLOCK_ELEMENTS:
        n = max(1, BLOCK_ELEMENTS // group_elements)
        while groups % n:
            n -= 1
        return [(slice(g, g + n), slice(0, per_group)) for g in range(0, groups, n)]
    n = max(1, BLOCK_ELEMENTS // (L * b * N))
    while per_group % n:
        n -= 1
    return [(slice(g, g + 1), slice(c, c + n)) for g in range(groups) for c in range(0, per_group, n)]


def _time_major(t: torch.Tensor, L_padded: int) -> torch.Tensor:
    """(b, ..., L) -> (L_padded, b, ...) contiguous, zero-padded at the end of time."""
    t = F.pad(t, (0, L_padded - t.shape[-1]))
    return t.permute(t.dim() - 1, *range(t.dim() - 1)).contiguous()


class _Blocks:
    """One call's channels as (b, G, e) and its blocks: iterating yields (groups, channels, _ChunkedScan)."""

    def __init__(self, u, delta, A, B, C):
        self.b, self.d, self.L = u.shape
        self.groups, self.N = B.shape[1], A.shape[1]
        self.per_group = self.d // self.groups
        self.shape = (self.b, self.groups, self.per_group)
        self.T = chunk_length(self.L)
        self.L_padded = math.ceil(self.L / self.T) * self.T
        self.u, self.delta = u.reshape(*self.shape, self.L), delta.reshape(*self.shape, self.L)
        self.A, self.B, self.C = A.reshape(self.groups, self.per_group, self.N), B, C

    def time_major(self, t: torch.Tensor) -> torch.Tensor:
        return _time_major(t, self.L_padded)

    def __iter__(self):
        buffers = {}
        for gs, cs in _channel_blocks(self.b, self.groups, self.per_group, self.N, self.L_padded):
            yield gs, cs, _ChunkedScan(
                self.time_major(self.u[:, gs, cs]).unsqueeze(3), self.time_major(self.delta[:, gs, cs]).unsqueeze(3),
                self.A[gs, cs].transpose(1, 2),
                self.time_major(self.B[:, gs]).unsqueeze(4), self.time_major(self.C[:, gs]).unsqueeze(4),
                self.T, buffers)

    def to_channels_first(self, t: torch.Tensor) -> torch.Tensor:
        """(L, b, G, e) -> (b, d, L), contiguous: the softplus/D/z steps around the core run 10x slower on the
        time-major strides."""
        return t.permute(1, 2, 3, 0).reshape(self.b, self.d, self.L).contiguous()


class SelectiveScanCore(torch.autograd.Function):
    """fp32 (or fp64) core: u, delta (b, d, L); A (d, N); B, C (b, G, N, L) -> y (b, d, L), last state (b, d, N).

    delta is the final step size (bias and softplus already applied). Saves only the inputs.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C):
        blocks = _Blocks(u, delta, A, B, C)
        L = blocks.L
        y = u.new_empty(L, *blocks.shape)
        last_state = u.new_empty(*blocks.shape, blocks.N)
        for gs, cs, scan in blocks:
            h = scan.states(scan.decays())
            y[:, :, gs, cs] = scan.output(h)[:L, :, :, 0]
            last_state[:, gs, cs] = h[L - 1].transpose(-1, -2)
        ctx.save_for_backward(u, delta, A, B, C)
        ctx.mark_non_differentiable(last_state)
        return blocks.to_channels_first(y), last_state.view(blocks.b, blocks.d, blocks.N)

    @staticmethod
    def backward(ctx, gy, _grad_last_state):
        u, delta, A, B, C = ctx.saved_tensors
        with torch.autocast(device_type=u.device.type, enabled=False):  # a backward called under autocast
            return SelectiveScanCore._gradients(gy, u, delta, A, B, C)  # would run its matmuls in half

    @staticmethod
    def _gradients(gy, u, delta, A, B, C):
        blocks = _Blocks(u, delta, A, B, C)
        L = blocks.L
        gy = gy.to(u.dtype).reshape(*blocks.shape, L)
        du, d_delta = u.new_empty(L, *blocks.shape), u.new_empty(L, *blocks.shape)
        dA = torch.empty_like(blocks.A)
        dB, dC = B.new_zeros(L, blocks.b, blocks.groups, blocks.N), C.new_zeros(L, blocks.b, blocks.groups, blocks.N)
        for gs, cs, scan in blocks:
            g_du, g_delta, g_A, g_B, g_C = scan.gradients(blocks.time_major(gy[:, gs, cs]).unsqueeze(3))
            du[:, :, gs, cs] = g_du[:L, :, :, 0]
            d_delta[:, :, gs, cs] = g_delta[:L, :, :, 0]
            dA[gs, cs] = g_A.transpose(1, 2)
            dB[:, :, gs] += g_B[:L, ..., 0]
            dC[:, :, gs] += g_C[:L, ..., 0]
        return (blocks.to_channels_first(du), blocks.to_channels_first(d_delta), dA.view_as(A),
                dB.permute(1, 2, 3, 0), dC.permute(1, 2, 3, 0))


def selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False):
    """mamba-ssm ``selective_scan_fn`` semantics in pure PyTorch on any device.

    u, delta, z: (b, d, L); A: (d, N) real; B, C: (b, N, L) or (b, G, N, L); D, delta_bias: (d,).
    Returns y (b, d, L) in delta's dtype, plus the last state (b, d, N) if ``return_last_state``.
    The arithmetic is fp32 (fp64 for fp64 inputs), also under autocast.
    """
    out_dtype = delta.dtype
    dtype = torch.float64 if out_dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=u.device.type, enabled=False):
        delta = delta.to(dtype)
        if delta_bias is not None:
            delta = delta + delta_bias.to(dtype)[:, None]
        if delta_softplus:
            delta = F.softplus(delta)
        B, C = (t.unsqueeze(1) if t.dim() == 3 else t for t in (B, C))
        y, last_state = SelectiveScanCore.apply(u.to(dtype), delta, A.to(dtype), B.to(dtype), C.to(dtype))
        if D is not None:
            y = y + u.to(dtype) * D.to(dtype)[:, None]
        if z is not None:
            y = y * F.silu(z.to(dtype))
    y = y.to(out_dtype)
    return (y, last_state) if return_last_state else y

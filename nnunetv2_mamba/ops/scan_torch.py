"""Fast pure-PyTorch selective scan (any device), linear in L for forward and backward.

Time is cut into n_c chunks of T ≈ sqrt(L) positions and laid out position-major, ``(T, n_c, ...)``, so that one
operation advances the recurrence h_t = a_t h_{t-1} + x_t (a_t = exp(Δ_t A), x_t = Δ_t u_t B_t) by one position in
every chunk at once, on a ``(n_c, b, N, e)`` slice of a block of e channels of one B/C group (about 1 MB: large
enough to amortise the op's dispatch, small enough for the L2 cache). The forward makes three sweeps: the T
positions of all chunks from zero states give each chunk's end state; a sweep over the chunks, with each chunk's
total decay exp(A ΣΔ), gives their true start states; the T positions again, from those starts, give the outputs.
It saves only its inputs, like mamba-ssm's kernel. The backward recomputes the states (the first two sweeps, then
all states into a reused workspace), then runs the same three sweeps in reverse time for the carry
R_{t-1} = a_t g_t of the adjoint g_t = C_t gy_t + R_t, reducing every gradient as it goes. Only factors <= 1 are multiplied: never a division, never the exp of a
positive number.
"""
from __future__ import annotations

import math
import threading
from functools import cached_property

import torch
import torch.nn.functional as F

#: upper bound (in elements) of one position's (n_c, b, N, e) slice of a channel block. Each op on a slice costs
#: a few microseconds of dispatch: on a 2-core Xeon, 2^17..2^20 time within noise of each other, 2^16 is 10% and
#: 2^15 2x slower; larger blocks would also grow the backward's (T + 1, slice) workspace
SLICE_ELEMENTS = 1 << 18


def chunk_length(L: int) -> int:
    """Positions per chunk: about sqrt(L), which balances the sweeps over positions and over chunks."""
    return max(1, math.ceil(math.sqrt(L)))


class _Workspace(threading.local):
    """Scratch buffers kept between calls on the CPU, one per name, grown to the largest request.

    A fresh multi-megabyte CPU allocation comes back from the OS a page fault at a time; reusing the memory makes
    the sweeps that fill it 3x faster. Holds two (T + 1, slice) buffers per thread: 2 x 33 MB at L = 1024 in fp32.
    """

    def get(self, name: str, shape, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device."""
        if like.device.type != "cpu":
            return like.new_empty(shape)
        numel = math.prod(shape)
        buffer = self.__dict__.get(name)
        if buffer is None or buffer.dtype != like.dtype or buffer.numel() < numel:
            buffer = self.__dict__[name] = like.new_empty(numel)
        return buffer[:numel].view(shape)


_workspace = _Workspace()


def _to_chunks(t: torch.Tensor, T: int, n_chunks: int, outer: int) -> torch.Tensor:
    """(b, outer * inner, L) -> (outer, T, n_c, b, inner) contiguous: position c * T + t at [:, t, c], zero-padded
    at the end of time."""
    b, M, L = t.shape
    out = t.new_empty(outer, T, n_chunks, b, M // outer)
    padded = n_chunks * T
    time_major = t.new_zeros(padded, M) if L < padded else t.new_empty(L, M)
    for i in range(b):
        rows = t[i].t()  # (L, M): already contiguous for channels-last input
        if L < padded or not rows.is_contiguous():  # a plain 2D transpose takes torch's cache-blocked copy
            time_major[:L] = rows
            rows = time_major
        out[:, :, :, i] = rows.view(n_chunks, T, outer, -1).permute(2, 1, 0, 3)
    return out


def _from_chunks(t: torch.Tensor, L: int, channels_last: bool) -> torch.Tensor:
    """(outer, T, n_c, b, inner) -> (b, outer * inner, L): the inverse of :func:`_to_chunks`, contiguous or, if
    ``channels_last``, the transpose of a contiguous (b, L, outer * inner)."""
    outer, T, n_chunks, b, inner = t.shape
    out = t.new_empty(b, L, outer * inner) if channels_last else t.new_empty(b, outer * inner, L)
    time_major = t.new_empty(n_chunks, T, outer, inner)
    for i in range(b):
        time_major.copy_(t[:, :, :, i].permute(2, 1, 0, 3))
        rows = time_major.view(n_chunks * T, outer * inner)[:L]
        out[i] = rows if channels_last else rows.t()
    return out.transpose(1, 2) if channels_last else out


class _Layout:
    """The block-major chunked layout of one call: channel blocks of ``width`` channels, ``splits`` per group.

    Channel tensors are (G, splits, T, n_c, b, 1, width), B/C tensors (G, T, n_c, b, N, 1), so every block is
    contiguous and each position's (n_c, b, N, width) slice stays below SLICE_ELEMENTS where possible. Results
    for (b, d, L) inputs come back in u's memory layout: channels-last (stride 1 along d) or contiguous.
    """

    def __init__(self, u: torch.Tensor, A: torch.Tensor, B: torch.Tensor):
        self.b, self.d, self.L = u.shape
        self.channels_last = u.stride(1) == 1 and u.stride(2) == self.d and self.L > 1
        self.groups, self.N = B.shape[1], A.shape[1]
        self.T = chunk_length(self.L)
        self.n_chunks = math.ceil(self.L / self.T)
        per_group = self.d // self.groups
        per_channel = self.n_chunks * self.b * self.N  # slice elements per channel
        self.splits = next((n for n in range(1, per_group) if per_group % n == 0
                            and per_channel * (per_group // n) <= SLICE_ELEMENTS), per_group)
        self.width = per_group // self.splits

    def blocks(self):
        """(group, split) index pairs of all channel blocks."""
        return [(g, k) for g in range(self.groups) for k in range(self.splits)]

    def channels(self, t: torch.Tensor) -> torch.Tensor:
        """(b, d, L) -> (G, splits, T, n_c, b, 1, width)."""
        chunked = _to_chunks(t, self.T, self.n_chunks, self.groups * self.splits)
        return chunked.view(self.groups, self.splits, self.T, self.n_chunks, self.b, 1, self.width)

    def states(self, t: torch.Tensor) -> torch.Tensor:
        """(b, G, N, L) -> (G, T, n_c, b, N, 1)."""
        chunked = _to_chunks(t.reshape(self.b, self.groups * self.N, self.L), self.T, self.n_chunks, self.groups)
        return chunked.unsqueeze(-1)

    def rates(self, A: torch.Tensor) -> torch.Tensor:
        """(d, N) -> (G, splits, N, width) contiguous."""
        return A.reshape(self.groups, self.splits, self.width, self.N).transpose(2, 3).contiguous()

    def channels_back(self, t: torch.Tensor) -> torch.Tensor:
        """(G, splits, T, n_c, b, 1, width) -> (b, d, L)."""
        return _from_chunks(t.view(-1, self.T, self.n_chunks, self.b, self.width), self.L, self.channels_last)

    def states_back(self, t: torch.Tensor) -> torch.Tensor:
        """(G, T, n_c, b, N, 1) -> (b, G, N, L)."""
        return _from_chunks(t.squeeze(-1), self.L, channels_last=False).view(self.b, self.groups, self.N, self.L)

    def rates_back(self, t: torch.Tensor) -> torch.Tensor:
        """(G, splits, N, width) -> (d, N)."""
        return t.transpose(2, 3).reshape(self.d, self.N)

    def channel_states_back(self, t: torch.Tensor) -> torch.Tensor:
        """(G, splits, b, N, width) -> (b, d, N)."""
        return t.permute(2, 0, 1, 4, 3).reshape(self.b, self.d, self.N)


class _BlockScan:
    """The recurrence of one contiguous block of channels in the chunked layout.

    delta, delta_u: (T, n_c, b, 1, e); A: (N, e); B, C: (T, n_c, b, N, 1). States and slices are (n_c, b, N, e).
    """

    def __init__(self, delta, delta_u, A, B, C):
        self.delta, self.delta_u, self.A, self.B, self.C = delta, delta_u, A, B, C
        self.T, self.n_chunks = delta.shape[:2]
        self.slice_shape = (*delta.shape[1:3], *A.shape)

    def _slice(self, zero: bool = False) -> torch.Tensor:
        new = self.delta.new_zeros if zero else self.delta.new_empty
        return new(self.slice_shape)

    @cached_property
    def _chunk_decays(self) -> torch.Tensor:
        """Each chunk's total decay prod_t a_t = exp(A sum_t Δ_t): (n_c, b, N, e), shared by both directions."""
        return torch.mul(self.delta.sum(0), self.A).exp_()

    def _decays_and_starts(self):
        """a_t = exp(Δ_t A) of every position, (T, n_c, b, N, e) in the workspace, and the state entering each
        chunk, (n_c, b, N, e), zero for the first."""
        decays = _workspace.get("decays", (self.T, *self.slice_shape), self.delta)
        starts, end = self._slice(zero=True), self._slice(zero=True)  # end: each chunk's end state from zero
        chunked = self.n_chunks > 1
        for delta, delta_u, B, decay in zip(self.delta, self.delta_u, self.B, decays):
            torch.mul(delta, self.A, out=decay).exp_()
            if chunked:  # while the decay slice is still in cache
                end.mul_(decay).addcmul_(delta_u, B)
        if chunked:
            for c in range(1, self.n_chunks):
                torch.addcmul(end[c - 1], self._chunk_decays[c - 1], starts[c - 1], out=starts[c])
        return decays, starts

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Writes y_t = <h_t, C_t> into ``y`` (T, n_c, b, 1, e); returns the states after each chunk's last
        position (n_c, b, N, e)."""
        decays, h = self._decays_and_starts()
        for decay, delta_u, B, C, y_t in zip(decays, self.delta_u, self.B, self.C, y):
            h.mul_(decay).addcmul_(delta_u, B)
            torch.matmul(C.transpose(-1, -2), h, out=y_t)
        return h

    def _carries_in(self, gy: torch.Tensor, decays: torch.Tensor) -> torch.Tensor:
        """R entering each chunk from its right, a_s g_s at the next chunk's first position s: (n_c, b, N, e)."""
        carries = self._slice(zero=True)
        if self.n_chunks == 1:
            return carries
        carry = self._slice(zero=True)
        for C, gy_t, decay in reversed(list(zip(self.C, gy, decays))):  # each chunk's carry out of its first
            carry.addcmul_(C, gy_t).mul_(decay)  # position, from a zero carry in
        for c in reversed(range(self.n_chunks - 1)):
            torch.addcmul(carry[c + 1], self._chunk_decays[c + 1], carries[c + 1], out=carries[c])
        return carries

    def _previous_states(self, decays: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """h_{t-1} for t = 0..T: (T + 1, n_c, b, N, e), in the workspace."""
        previous = _workspace.get("states", (self.T + 1, *self.slice_shape), self.delta)
        previous[0] = starts
        for t, (decay, delta_u, B) in enumerate(zip(decays, self.delta_u, self.B)):
            torch.mul(previous[t], decay, out=previous[t + 1]).addcmul_(delta_u, B)
        return previous

    def backward(self, gy, d_delta_u, d_delta, dA, dB, dC) -> None:
        """For the output gradient gy (T, n_c, b, 1, e), writes d(Δu) and the decay part of dΔ (like delta),
        dA (N, e), dB and dC (like B)."""
        decays, starts = self._decays_and_starts()
        previous = self._previous_states(decays, starts)
        torch.matmul(previous[1:], gy.transpose(-1, -2), out=dC)
        carry = self._carries_in(gy, decays)
        g, w, dA_terms = self._slice(), self._slice(), self._slice(zero=True)
        steps = zip(self.delta, self.delta_u, self.B, self.C, decays, previous, gy, d_delta_u, d_delta, dB)
        for delta, delta_u, B, C, decay, h_previous, gy_t, d_delta_u_t, d_delta_t, dB_t in reversed(list(steps)):
            torch.addcmul(carry, C, gy_t, out=g)  # the adjoint dL/dh_t
            torch.sum(torch.mul(g, delta_u, out=w), dim=-1, keepdim=True, out=dB_t)
            torch.matmul(B.transpose(-1, -2), g, out=d_delta_u_t)
            torch.mul(decay, g, out=carry)
            torch.mul(carry, h_previous, out=w)  # dL/da_t * a_t = a_t g_t h_{t-1}
            dA_terms.addcmul_(w, delta)
            torch.sum(w.mul_(self.A), dim=-2, keepdim=True, out=d_delta_t)
        torch.sum(dA_terms, dim=(0, 1), out=dA)


class SelectiveScanCore(torch.autograd.Function):
    """fp32 (or fp64) core: u, delta (b, d, L); A (d, N); B, C (b, G, N, L) -> y (b, d, L), last state (b, d, N).

    delta is the final step size (bias and softplus already applied). Saves only the inputs; the backward lays them
    out again (row copies for channels-last ones).
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C):
        layout = _Layout(u, A, B)
        u_c, delta_c, A_c = layout.channels(u), layout.channels(delta), layout.rates(A)
        B_c, C_c = layout.states(B), layout.states(C)
        delta_u = delta_c * u_c
        y = torch.empty_like(delta_c)
        last_state = delta_c.new_empty(layout.groups, layout.splits, layout.b, layout.N, layout.width)
        for g, k in layout.blocks():
            scan = _BlockScan(delta_c[g, k], delta_u[g, k], A_c[g, k], B_c[g], C_c[g])
            last_state[g, k] = scan.forward(y[g, k])[-1]
        ctx.save_for_backward(u, delta, A, B, C)
        ctx.mark_non_differentiable(last_state)
        return layout.channels_back(y), layout.channel_states_back(last_state)

    @staticmethod
    def backward(ctx, gy, _grad_last_state):
        with torch.autocast(device_type=gy.device.type, enabled=False):  # a backward called under autocast
            return SelectiveScanCore._gradients(gy, *ctx.saved_tensors)  # would run matmuls in half

    @staticmethod
    def _gradients(gy, u, delta, A, B, C):
        layout = _Layout(u, A, B)
        u_c, delta_c, A_c = layout.channels(u), layout.channels(delta), layout.rates(A)
        B_c, C_c, gy_c = layout.states(B), layout.states(C), layout.channels(gy.to(u.dtype))
        delta_u = delta_c * u_c
        d_delta_u, d_delta, dA = torch.empty_like(delta_c), torch.empty_like(delta_c), torch.empty_like(A_c)
        dB, dC = torch.empty_like(B_c), torch.empty_like(C_c)
        dB_part, dC_part = (torch.empty_like(B_c[0]), torch.empty_like(C_c[0])) if layout.splits > 1 else (None, None)
        for g, k in layout.blocks():
            scan = _BlockScan(delta_c[g, k], delta_u[g, k], A_c[g, k], B_c[g], C_c[g])
            first = k == 0  # the group's later blocks add their parts of dB, dC
            scan.backward(gy_c[g, k], d_delta_u[g, k], d_delta[g, k], dA[g, k],
                          dB[g] if first else dB_part, dC[g] if first else dC_part)
            if not first:
                dB[g] += dB_part
                dC[g] += dC_part
        d_delta.addcmul_(u_c, d_delta_u)  # x_t = Δ_t u_t B_t
        return (layout.channels_back(d_delta_u.mul_(delta_c)), layout.channels_back(d_delta),
                layout.rates_back(dA), layout.states_back(dB), layout.states_back(dC))


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

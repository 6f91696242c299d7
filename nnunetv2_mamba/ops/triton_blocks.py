"""The Triton selective scan's block sizes and the workspace its backward allocates, without importing triton (the
training-memory model needs them on machines without it)."""
from __future__ import annotations

TILE_ELEMENTS = 2048  # BLOCK_D * BLOCK_N * BLOCK_L per program: bounds the registers held by one 3-D tile
DEFAULT_BLOCK_L = 32


def next_power_of_2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def block_sizes(d_state: int, channels_per_group: int, block_l: int = DEFAULT_BLOCK_L) -> tuple[int, int]:
    """(BLOCK_D, BLOCK_N): N padded to a power of two, as many channels as fit in ``TILE_ELEMENTS``."""
    block_n = next_power_of_2(d_state)
    block_d = max(1, min(next_power_of_2(channels_per_group), TILE_ELEMENTS // (block_n * block_l)))
    return block_d, block_n


def backward_workspace_floats(batch: int, channels: int, groups: int, d_state: int, length: int,
                              block_l: int = DEFAULT_BLOCK_L) -> int:
    """fp32 values the Triton backward of one scan allocates besides the gradients: dB and dC partials per channel
    block, (b, G, blocks per group, N, L) each (summed in torch afterwards), and one scratch tile per program."""
    channels_per_group = channels // groups
    block_d, block_n = block_sizes(d_state, channels_per_group, block_l)
    programs = batch * groups * -(-channels_per_group // block_d)
    return programs * (2 * d_state * length + block_d * block_n * block_l)

"""Training-memory model of a VSS U-Net: parameters, gradients, optimiser state, activations and the scan's
backward workspace.

    bytes(patch, batch) = 4 * P * (2 + optimizer_slots) + batch * 4 * a * padded_pixels(patch) + 4 * w(patch, batch)

P is the parameter count, ``optimizer_slots`` the floats of optimiser state per parameter (the trainer's recipe:
AdamW 2, SGD with momentum 1), ``a`` the activations autograd keeps per input pixel or voxel (floats) and ``w`` the
largest workspace one scan's backward allocates on top of them: the Triton backward's dB/dC partials per channel
block and scratch tiles (``ops/triton_blocks.py``; counted whatever the backend, so conservative where mamba-ssm's
kernel or the CPU scans run), computed for the patch from each scan's shape. P, ``a`` and the scans' shapes
(channels, groups, state size, positions per padded pixel) are measured on the real network: ``a`` by counting, once
per architecture and geometry, the distinct tensors saved for backward in one forward pass at a probe (parameters
excluded): 64 x 64 in 2D, one ``size_divisor`` per axis in 3D (the smallest volume the network takes; a 2x larger
one measures 6% fewer floats per voxel, so this errs on the safe side); the scans' shapes in that pass. Every saved
tensor scales with the pixel count (the network pads to ``size_divisor``), so ``a`` is linear in the padded pixels.
fp32 throughout: on CUDA with AMP most saved tensors are half precision, so the estimate is conservative there.
``benchmarks/bench_planner_memory.py`` compares it with the measured peak memory of a training step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from nnunetv2_mamba.nets.ss2d import SelectiveScanMixer
from nnunetv2_mamba.ops.triton_blocks import backward_workspace_floats

PROBE_SIZE = 64
BYTES_PER_FLOAT = 4


def padded_pixels(patch_size, size_divisor: int | tuple[int, ...]) -> int:
    """Pixels the network computes on after padding each axis up to a multiple of ``size_divisor`` (one per axis,
    or one for all)."""
    divisors = (size_divisor,) * len(patch_size) if isinstance(size_divisor, int) else size_divisor
    return math.prod(math.ceil(s / d) * d for s, d in zip(patch_size, divisors))


def saved_activation_floats(network: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Floats in the distinct non-parameter tensors autograd saves during one training-mode forward pass."""
    parameter_storages = {p.untyped_storage().data_ptr() for p in network.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameter_storages:
            saved[storage.data_ptr()] = storage.nbytes() // tensor.element_size()
        return tensor

    network.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = network(torch.zeros(1, *input_shape))
    del output
    return sum(saved.values())


def scan_shapes(network: nn.Module, input_shape: tuple[int, ...]) -> set[tuple[int, int, int, int]]:
    """(channels, groups, state size, length) of every distinct scan in one forward pass on one input of
    ``input_shape``, read from the mixers' inputs."""
    shapes = set()

    def record(mixer: SelectiveScanMixer, inputs) -> None:
        _, *spatial, _ = inputs[0].shape
        K = mixer.directions.num_directions
        shapes.add((K * mixer.d_inner, K, mixer.d_state, math.prod(spatial)))

    hooks = [m.register_forward_pre_hook(record) for m in network.modules() if isinstance(m, SelectiveScanMixer)]
    try:
        with torch.no_grad():
            network(torch.zeros(1, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


@dataclass(frozen=True)
class NetworkMemoryModel:
    """Training memory of one architecture as a function of patch size and batch size."""

    parameters: int
    activation_floats_per_pixel: float
    size_divisor: int | tuple[int, ...]
    optimizer_slots: int = 1  # SGD with momentum keeps one buffer per parameter, AdamW two (Recipe.optimizer_slots)
    #: (channels, groups, state size, positions per padded pixel) of each distinct scan
    scans: tuple[tuple[int, int, int, float], ...] = ()

    def static_bytes(self) -> int:
        """Weights, gradients and optimiser state."""
        return BYTES_PER_FLOAT * self.parameters * (2 + self.optimizer_slots)

    def activation_bytes(self, patch_size, batch_size: int) -> float:
        return (BYTES_PER_FLOAT * batch_size * self.activation_floats_per_pixel
                * padded_pixels(patch_size, self.size_divisor))

    def workspace_bytes(self, patch_size, batch_size: int) -> int:
        """The largest workspace one scan's (Triton) backward allocates besides the activations; linear in the
        batch."""
        pixels = padded_pixels(patch_size, self.size_divisor)
        return BYTES_PER_FLOAT * max((backward_workspace_floats(batch_size, channels, groups, d_state,
                                                                round(per_pixel * pixels))
                                      for channels, groups, d_state, per_pixel in self.scans), default=0)

    def training_bytes(self, patch_size, batch_size: int) -> float:
        return (self.static_bytes() + self.activation_bytes(patch_size, batch_size)
                + self.workspace_bytes(patch_size, batch_size))

    def max_batch_size(self, patch_size, budget_bytes: float) -> int:
        """Largest batch whose training memory fits ``budget_bytes`` (0 if not even one sample fits)."""
        per_sample = self.activation_bytes(patch_size, 1) + self.workspace_bytes(patch_size, 1)
        return max(0, math.floor((budget_bytes - self.static_bytes()) / per_sample))


def measure_memory_model(network_class: type[nn.Module], input_channels: int, num_classes: int,
                         network_kwargs: dict, optimizer_slots: int = 1) -> NetworkMemoryModel:
    """Build the network (with deep supervision, as trained) and probe it; see the module docstring."""
    return _measure(network_class, input_channels, num_classes, _freeze(network_kwargs), optimizer_slots)


def _freeze(kwargs: dict) -> tuple:
    def hashable(value):
        return tuple(hashable(v) for v in value) if isinstance(value, (list, tuple)) else value
    return tuple(sorted((k, hashable(v)) for k, v in kwargs.items()))


@lru_cache(maxsize=None)
def _measure(network_class, input_channels, num_classes, frozen_kwargs, optimizer_slots) -> NetworkMemoryModel:
    torch.manual_seed(0)
    network = network_class(input_channels, num_classes, deep_supervision=True, **dict(frozen_kwargs))
    probe = (PROBE_SIZE, PROBE_SIZE) if network.spatial_dims == 2 else network.size_divisor
    floats = saved_activation_floats(network, (input_channels, *probe))
    pixels = padded_pixels(probe, network.size_divisor)
    return NetworkMemoryModel(
        parameters=sum(p.numel() for p in network.parameters()),
        activation_floats_per_pixel=floats / pixels,
        size_divisor=network.size_divisor,
        optimizer_slots=optimizer_slots,
        scans=tuple((channels, groups, d_state, length / pixels) for channels, groups, d_state, length
                    in sorted(scan_shapes(network, (input_channels, *probe)))))

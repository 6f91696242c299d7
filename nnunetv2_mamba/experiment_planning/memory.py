"""Training-memory model of a VSS U-Net: parameters, gradients, optimiser state and activations.

    bytes(patch, batch) = 4 * P * (2 + optimizer_slots) + batch * 4 * a * padded_pixels(patch)

P is the parameter count and ``a`` the activations autograd keeps per input pixel or voxel (floats), both measured
on the real network: ``a`` by counting, once per architecture and geometry, the distinct tensors saved for
backward in one forward pass at a probe (parameters excluded): 64 x 64 in 2D, one ``size_divisor`` per axis in 3D
(the smallest volume the network takes; a 2x larger one measures 6% fewer floats per voxel, so this errs on the
safe side). Every saved tensor scales with the pixel count (the network pads to ``size_divisor``), so the
estimate is linear in the padded pixels. fp32 throughout: on CUDA with AMP most saved
tensors are half precision, so the estimate is conservative there. ``benchmarks/bench_planner_memory.py``
compares it with the measured peak memory of a training step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

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


@dataclass(frozen=True)
class NetworkMemoryModel:
    """Training memory of one architecture as a function of patch size and batch size."""

    parameters: int
    activation_floats_per_pixel: float
    size_divisor: int | tuple[int, ...]
    optimizer_slots: int = 1  # nnU-Net's SGD keeps one momentum buffer per parameter; AdamW keeps two

    def static_bytes(self) -> int:
        """Weights, gradients and optimiser state."""
        return BYTES_PER_FLOAT * self.parameters * (2 + self.optimizer_slots)

    def activation_bytes(self, patch_size, batch_size: int) -> float:
        return (BYTES_PER_FLOAT * batch_size * self.activation_floats_per_pixel
                * padded_pixels(patch_size, self.size_divisor))

    def training_bytes(self, patch_size, batch_size: int) -> float:
        return self.static_bytes() + self.activation_bytes(patch_size, batch_size)

    def max_batch_size(self, patch_size, budget_bytes: float) -> int:
        """Largest batch whose training memory fits ``budget_bytes`` (0 if not even one sample fits)."""
        per_sample = self.activation_bytes(patch_size, 1)
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
    return NetworkMemoryModel(
        parameters=sum(p.numel() for p in network.parameters()),
        activation_floats_per_pixel=floats / padded_pixels(probe, network.size_divisor),
        size_divisor=network.size_divisor,
        optimizer_slots=optimizer_slots)

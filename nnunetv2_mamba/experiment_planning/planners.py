"""ExperimentPlanner subclasses that plan the 2d and 3d configurations for Mamba-UNet / VM-UNet.

Everything nnU-Net's planner decides about the data (spacing, transpose, normalisation, resampling, whether a
3d_lowres / cascade exists) is kept; each configuration gets instead a patch size that follows the data's aspect
ratio in multiples of the network's size divisor (32 in 2d; per axis in 3d), a batch size from :mod:`.memory`, and
``architecture`` = the network's dotted class path and kwargs. In 3d the kwargs add the per-axis geometry
(nets/geometry.py, ``factors_for_spacing``), fixed from the spacing and the clipped initial patch, so anisotropic
data keep their slice axis unreduced where nnU-Net would not pool it (docs/three_d.md, "Planning").
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple, Union

import numpy as np

from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.nets.geometry import factors_for_spacing, make_geometry
from nnunetv2_mamba.experiment_planning.memory import measure_memory_model
from nnunetv2_mamba.training.recipes import DEFAULT_RECIPE

PATCH_MULTIPLE = 32
START_VOXELS = {2: 2048 ** 2, 3: 256 ** 3}  # nnU-Net's initial patch volumes, before clipping and shrinking
VOLUME_DIRECTIONS = 6
GIB = 1024 ** 3
REUSED_DATA = ("2d", "3d_fullres")  # configurations preprocessed exactly as by nnU-Net's default planner


def dotted_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def round_up(value: float, multiple: int) -> int:
    return max(multiple, math.ceil(value / multiple) * multiple)


def per_axis(multiple: int | Sequence[int], num_axes: int) -> list[int]:
    return [multiple] * num_axes if isinstance(multiple, int) else list(multiple)


def patch_start(spacing, median_shape) -> list[float]:
    """nnU-Net's start: the physical aspect ratio scaled to 2048^2 pixels (2D) or 256^3 voxels (3D), clipped to
    the median shape."""
    aspect = 1 / np.asarray(spacing, dtype=float)
    start = aspect * (START_VOXELS[len(spacing)] / np.prod(aspect)) ** (1 / len(spacing))
    return [min(float(s), float(m)) for s, m in zip(start, median_shape)]


def initial_patch_size(spacing, median_shape, multiple: int | Sequence[int] = PATCH_MULTIPLE) -> list[int]:
    """:func:`patch_start` rounded up to multiples of ``multiple`` (one per axis, or one for all)."""
    return [round_up(s, m) for s, m in zip(patch_start(spacing, median_shape), per_axis(multiple, len(spacing)))]


def shrink_patch_to_fit(patch, median_shape, fits, multiple: int | Sequence[int] = PATCH_MULTIPLE) -> list[int]:
    """Take an axis' ``multiple`` off the axis largest relative to the median shape until ``fits(patch)``."""
    patch, multiples = list(patch), per_axis(multiple, len(patch))
    while not fits(patch):
        shrinkable = [i for i, s in enumerate(patch) if s > multiples[i]]
        if not shrinkable:
            raise RuntimeError(f"Not even a {patch} patch fits the memory target; raise gpu_memory_target_in_gb.")
        axis = max(shrinkable, key=lambda i: patch[i] / median_shape[i])
        patch[axis] -= multiples[axis]
    return patch


class VSSUNetPlanner(ExperimentPlanner):
    """Plans ``network_class`` with ``network_kwargs`` (plus the 3d geometry) under ``default_plans_name``."""

    network_class: type
    network_kwargs: dict
    default_plans_name: str

    def __init__(self, dataset_name_or_id: Union[str, int], gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str | None = None,
                 overwrite_target_spacing: Union[List[float], Tuple[float, ...]] = None,
                 suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name,
                         plans_name or self.default_plans_name, overwrite_target_spacing, suppress_transpose)

    def generate_data_identifier(self, configuration_name: str) -> str:
        """``nnUNetPlans_<configuration>`` for 2d and 3d_fullres, whose preprocessing is nnU-Net's own (as nnU-Net's
        ResEnc planners do), so every plans file of a dataset trains on one copy of the data."""
        if configuration_name in REUSED_DATA:
            return f"nnUNetPlans_{configuration_name}"
        return super().generate_data_identifier(configuration_name)

    def memory_model(self, network_kwargs: dict):
        """The training-memory model of ``network_class`` with the optimiser state of its trainers' default
        recipe (``DEFAULT_RECIPE``: AdamW, two floats per parameter)."""
        channels = self.dataset_json.get("channel_names", self.dataset_json.get("modality"))
        return measure_memory_model(self.network_class, len(channels), len(self.dataset_json["labels"]),
                                    network_kwargs, DEFAULT_RECIPE[self.network_class.__name__].optimizer_slots)

    def configuration_network_kwargs(self, spacing, median_shape) -> tuple[dict, int | tuple[int, ...]]:
        """(network kwargs, patch multiple): in 2d ``network_kwargs`` and 32; in 3d plus the geometry for this
        spacing and initial patch, and its per-axis size divisor."""
        if len(spacing) == 2:
            return dict(self.network_kwargs), PATCH_MULTIPLE
        num_stages = len(self.network_kwargs["dims"])
        stem, merges = factors_for_spacing(spacing, patch_start(spacing, median_shape), num_stages)
        kwargs = {**self.network_kwargs, "spatial_dims": 3, "patch_size": stem, "merge_factors": merges,
                  "num_directions": VOLUME_DIRECTIONS}
        return kwargs, make_geometry(3, num_stages, stem, merges).size_divisor

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier: str,
                                    approximate_n_voxels_dataset: float, _cache: dict) -> dict:
        plan = super().get_plans_for_configuration(spacing, median_shape, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        network_kwargs, multiple = self.configuration_network_kwargs(spacing, median_shape)
        memory = self.memory_model(network_kwargs)
        budget = self.UNet_vram_target_GB * GIB
        patch = shrink_patch_to_fit(initial_patch_size(spacing, median_shape, multiple), median_shape,
                                    lambda p: memory.max_batch_size(p, budget) >= self.UNet_min_batch_size, multiple)
        five_percent = round(approximate_n_voxels_dataset * self.max_dataset_covered / np.prod(patch, dtype=float))
        batch_size = max(min(memory.max_batch_size(patch, budget), five_percent), self.UNet_min_batch_size)
        plan.update(patch_size=patch, batch_size=batch_size, architecture={
            "network_class_name": dotted_name(self.network_class),
            "arch_kwargs": network_kwargs,
            "_kw_requires_import": [],
        })
        return plan


class nnUNetPlannerMambaUNet(VSSUNetPlanner):
    """Mamba-UNet plans (``nnUNetMambaUNetPlans``): train with ``-p nnUNetMambaUNetPlans -tr nnUNetTrainerMambaUNet``."""
    network_class = MambaUNet
    network_kwargs = {"dims": [96, 192, 384, 768], "depths": [2, 2, 2, 2], "decoder_depths": [2, 2, 2],
                      "d_state": 16, "drop_path_rate": 0.2}
    default_plans_name = "nnUNetMambaUNetPlans"


class nnUNetPlannerVMUNet(VSSUNetPlanner):
    """VM-UNet plans (``nnUNetVMUNetPlans``): train with ``-p nnUNetVMUNetPlans -tr nnUNetTrainerVMUNet``."""
    network_class = VMUNet
    network_kwargs = {"dims": [96, 192, 384, 768], "depths": [2, 2, 2, 2], "decoder_depths": [2, 2, 2, 1],
                      "d_state": 16, "drop_path_rate": 0.2}
    default_plans_name = "nnUNetVMUNetPlans"


PLANNERS = {"MambaUNet": nnUNetPlannerMambaUNet, "VMUNet": nnUNetPlannerVMUNet}

"""ExperimentPlanner subclasses that plan a 2D configuration for Mamba-UNet / VM-UNet.

Everything nnU-Net's planner decides about the data (spacing, transpose, normalisation, resampling) is kept; the
2d configuration gets instead a patch size in multiples of 32 that follows the data's aspect ratio, a batch size
from :mod:`.memory`, and ``architecture`` = the network's dotted class path and kwargs. No 3d configurations.
"""
from __future__ import annotations

import math
from typing import List, Tuple, Union

import numpy as np

from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.experiment_planning.memory import measure_memory_model

PATCH_MULTIPLE = 32
GIB = 1024 ** 3


def dotted_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def round_up(value: float, multiple: int) -> int:
    return max(multiple, math.ceil(value / multiple) * multiple)


def initial_patch_size(spacing, median_shape, multiple: int = PATCH_MULTIPLE) -> list[int]:
    """nnU-Net's 2D start (the physical aspect ratio scaled to 2048^2 pixels, clipped to the median shape),
    rounded up to multiples of ``multiple``."""
    aspect = 1 / np.asarray(spacing, dtype=float)
    start = aspect * (2048 ** 2 / np.prod(aspect)) ** 0.5
    return [round_up(min(s, m), multiple) for s, m in zip(start, median_shape)]


def shrink_patch_to_fit(patch, median_shape, fits, multiple: int = PATCH_MULTIPLE) -> list[int]:
    """Take ``multiple`` off the axis largest relative to the median shape until ``fits(patch)``."""
    patch = list(patch)
    while not fits(patch):
        shrinkable = [i for i, s in enumerate(patch) if s > multiple]
        if not shrinkable:
            raise RuntimeError(f"Not even a {patch} patch fits the memory target; raise gpu_memory_target_in_gb.")
        axis = max(shrinkable, key=lambda i: patch[i] / median_shape[i])
        patch[axis] -= multiple
    return patch


class VSSUNetPlanner(ExperimentPlanner):
    """Plans ``network_class`` with ``network_kwargs`` (2d only) under ``default_plans_name``."""

    network_class: type
    network_kwargs: dict
    default_plans_name: str

    def __init__(self, dataset_name_or_id: Union[str, int], gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str | None = None,
                 overwrite_target_spacing: Union[List[float], Tuple[float, ...]] = None,
                 suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name,
                         plans_name or self.default_plans_name, overwrite_target_spacing, suppress_transpose)

    def memory_model(self):
        channels = self.dataset_json.get("channel_names", self.dataset_json.get("modality"))
        return measure_memory_model(self.network_class, len(channels), len(self.dataset_json["labels"]),
                                    self.network_kwargs)

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier: str,
                                    approximate_n_voxels_dataset: float, _cache: dict) -> dict:
        if len(spacing) != 2:  # keeps plan_experiment's 3d branch cheap; save_plans drops it
            return {"not_planned": f"{self.network_class.__name__} is 2D-only: no 3d configurations are saved",
                    "patch_size": tuple(median_shape), "spacing": spacing}
        plan = super().get_plans_for_configuration(spacing, median_shape, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        memory = self.memory_model()
        budget = self.UNet_vram_target_GB * GIB
        patch = shrink_patch_to_fit(initial_patch_size(spacing, median_shape), median_shape,
                                    lambda p: memory.max_batch_size(p, budget) >= self.UNet_min_batch_size)
        five_percent = round(approximate_n_voxels_dataset * self.max_dataset_covered / np.prod(patch, dtype=float))
        batch_size = max(min(memory.max_batch_size(patch, budget), five_percent), self.UNet_min_batch_size)
        plan.update(patch_size=patch, batch_size=batch_size, architecture={
            "network_class_name": dotted_name(self.network_class),
            "arch_kwargs": dict(self.network_kwargs),
            "_kw_requires_import": [],
        })
        return plan

    def save_plans(self, plans):
        plans["configurations"] = {name: c for name, c in plans["configurations"].items() if name == "2d"}
        super().save_plans(plans)


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

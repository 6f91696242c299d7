"""The planner's pieces in process: patch-size search and the memory model it sizes batches with."""
from __future__ import annotations

import pytest
import torch

from nnunetv2_mamba.nets import MambaUNet
from nnunetv2_mamba.experiment_planning.memory import NetworkMemoryModel, measure_memory_model, saved_activation_floats
from nnunetv2_mamba.experiment_planning.planners import initial_patch_size, shrink_patch_to_fit

TINY = {"dims": [16, 32, 64, 128]}


def test_initial_patch_follows_the_aspect_ratio_in_multiples_of_32_and_covers_the_median_image():
    assert initial_patch_size([1.5, 1.5], [256, 216]) == [256, 224]
    assert initial_patch_size([2.0, 1.0], [2000, 2000]) == [1472, 2016]  # 0.5 : 1 in mm, clipped to the image
    assert initial_patch_size([1.0, 1.0], [20, 40]) == [32, 64]


def test_shrinking_takes_32_off_the_axis_largest_relative_to_the_image_until_two_samples_fit():
    model = NetworkMemoryModel(parameters=1_000_000, activation_floats_per_pixel=1000.0, size_divisor=32)
    budget = model.training_bytes([256, 128], 2)
    patch = shrink_patch_to_fit([512, 256], [400, 400], lambda p: model.max_batch_size(p, budget) >= 2)
    # 512 -> 256 on the long axis first, then alternating while both stay at the same fraction of the image
    assert patch == [160, 192] and model.max_batch_size(patch, budget) == 2
    with pytest.raises(RuntimeError, match="raise gpu_memory_target_in_gb"):
        shrink_patch_to_fit([64, 64], [64, 64], lambda p: False)


def test_batch_size_is_what_the_budget_leaves_after_weights_gradients_and_momentum():
    model = NetworkMemoryModel(parameters=1_000_000, activation_floats_per_pixel=1000.0, size_divisor=32)
    per_sample = 4 * 1000.0 * 128 * 128
    assert model.static_bytes() == 4 * 1_000_000 * 3
    assert model.max_batch_size([128, 128], model.static_bytes() + 5.5 * per_sample) == 5
    assert model.max_batch_size([100, 100], model.static_bytes() + 5.5 * per_sample) == 5  # padded to 128


def test_saved_activations_grow_with_the_padded_pixel_count_and_exclude_parameters(monkeypatch):
    # the torch scan saves only tensors of the sequence's length (the cpu scan adds one state per 64 positions,
    # rounded up), so with it the count is exactly affine in the pixels: the same floats per pixel between any
    # two sizes, plus a few tensors made from weights alone (e.g. A = -exp(A_logs)) that do not grow at all
    monkeypatch.setenv("nnUNet_mamba_scan", "torch")
    torch.manual_seed(0)
    net = MambaUNet(1, 4, deep_supervision=True, **TINY)
    small, large, larger = (saved_activation_floats(net, (1, s, s)) for s in (64, 128, 192))
    per_pixel = (large - small) / (128 ** 2 - 64 ** 2)
    assert (larger - large) / (192 ** 2 - 128 ** 2) == per_pixel  # integer counts: exact
    assert 0 < small - per_pixel * 64 ** 2 < 0.2 * small
    linear = torch.nn.Sequential(torch.nn.Linear(4, 1000), torch.nn.ReLU())
    assert saved_activation_floats(linear, (4,)) < 2 * 1000 + 4 * 2  # the 4000-float weight is not counted
    model = measure_memory_model(MambaUNet, 1, 4, TINY)
    assert model.parameters == sum(p.numel() for p in net.parameters())
    assert model.activation_floats_per_pixel == pytest.approx(small / 64 ** 2)  # the same float64 division


def test_3d_patch_starts_at_nnunets_256_cubed_aspect_and_shrinks_by_each_axis_divisor():
    assert initial_patch_size([1.0, 1.0, 1.0], [500, 500, 500], (32, 32, 32)) == [256, 256, 256]
    # 5 mm slices: 256^3 voxels in the physical aspect ratio (88 x 438 x 438), clipped to the 40 slices, rounded up
    start = initial_patch_size([5.0, 1.0, 1.0], [40, 512, 512], (8, 32, 32))
    assert start == [40, 448, 448]
    patch = shrink_patch_to_fit(start, [40, 512, 512], lambda p: p[0] * p[1] * p[2] <= 40 * 160 * 160, (8, 32, 32))
    assert patch == [16, 224, 256]  # each step took one divisor off the axis largest relative to the median shape


def test_optimizer_slots_follow_the_trainers_recipe():
    """AdamW keeps two floats per parameter, SGD with momentum one; the planners size batches for the trainers'
    default recipe (AdamW), so weights + gradients + optimiser state are 4 floats per parameter."""
    from dataclasses import replace

    from nnunetv2_mamba.experiment_planning.planners import nnUNetPlannerMambaUNet, nnUNetPlannerVMUNet
    from nnunetv2_mamba.training.recipes import DEFAULT_RECIPE, NNUNET_RECIPE, named_recipes
    assert NNUNET_RECIPE.optimizer_slots == 1 and replace(NNUNET_RECIPE, momentum=0.0).optimizer_slots == 0
    assert named_recipes("MambaUNet")["AdamW1em3Poly"].optimizer_slots == 2
    for planner_class in (nnUNetPlannerMambaUNet, nnUNetPlannerVMUNet):
        planner = planner_class.__new__(planner_class)  # only memory_model is used: no dataset needed
        planner.dataset_json = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1}}
        model = planner.memory_model(TINY)
        assert DEFAULT_RECIPE[planner.network_class.__name__].optimizer == "adamw"
        assert model.optimizer_slots == 2 and model.static_bytes() == 4 * model.parameters * 4


def test_the_triton_backward_workspace_of_the_largest_scan_is_counted():
    """dB and dC partials per channel block, (b, G, blocks, N, L) each, and one scratch tile per program, for the
    scan where that is largest at the patch, on top of the activations."""
    from nnunetv2_mamba.ops.triton_blocks import backward_workspace_floats
    model = measure_memory_model(MambaUNet, 1, 4, TINY)
    # TINY stage 0 at 128 x 128: C = 16 on a 32 x 32 grid, four directions of 2C channels in 4 groups, N = 16
    assert (128, 4, 16, 1 / 16) in model.scans
    # 32 channels per group: blocks of 4 (a (4, 16, 32) tile), 8 blocks per group, 4 groups, batch 3
    assert backward_workspace_floats(3, 128, 4, 16, 1024) == 3 * 4 * 8 * (2 * 16 * 1024 + 4 * 16 * 32)
    workspace = max(4 * backward_workspace_floats(3, *scan[:3], round(scan[3] * 128 * 128)) for scan in model.scans)
    assert model.workspace_bytes([128, 128], 3) == workspace > 0
    assert model.training_bytes([128, 128], 3) == (model.static_bytes() + model.activation_bytes([128, 128], 3)
                                                   + workspace)
    budget = model.training_bytes([128, 128], 3)
    assert model.max_batch_size([128, 128], budget) == 3 and model.max_batch_size([128, 128], budget - 1) == 2

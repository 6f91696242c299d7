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

"""Training recipes without a dataset: optimisers and parameter groups on real networks, learning rates against
nnU-Net's and torch's schedulers or their closed forms, and the named trainers."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from torch import nn

from nnunetv2_mamba.nets import MambaUNet, VMUNet
from nnunetv2_mamba.training import trainers
from nnunetv2_mamba.training.optimizers import build_optimizer
from nnunetv2_mamba.training.recipes import (DEFAULT_RECIPE, NNUNET_RECIPE, PAPER_RECIPES, Recipe, named_recipes)
from nnunetv2_mamba.training.schedules import RecipeLRScheduler

DIMS = (8, 16, 32, 64)


def scheduled(recipe: Recipe, network: nn.Module, num_epochs: int, iterations: int):
    optimizer = build_optimizer(recipe, network)
    return optimizer, RecipeLRScheduler(optimizer, recipe, num_epochs, iterations)


def lrs(scheduler: RecipeLRScheduler, optimizer, points) -> list[float]:
    """The rate the optimizer holds at each (epoch, iteration), stepped as RecipeTrainer steps it."""
    found = []
    for epoch, iteration in points:
        scheduler.step(epoch)
        scheduler.step_iteration(epoch, iteration)
        found.append(optimizer.param_groups[0]["lr"])
        assert all(group["lr"] == found[-1] for group in optimizer.param_groups)
    return found


def test_nnunet_recipe_is_nnunets_sgd_and_poly_schedule():
    network = MambaUNet(1, 3, dims=DIMS)
    optimizer, scheduler = scheduled(NNUNET_RECIPE, network, num_epochs=1000, iterations=250)
    assert type(optimizer) is torch.optim.SGD and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.99, True, 3e-5)
    assert len(group["params"]) == len(list(network.parameters()))
    reference_optimizer = torch.optim.SGD(network.parameters(), 1e-2, momentum=0.99, nesterov=True)
    reference = PolyLRScheduler(reference_optimizer, 1e-2, 1000)
    for epoch in (0, 1, 17, 500, 999):
        reference.step(epoch)
        # the rate is constant within an epoch: a per-epoch recipe ignores the iteration
        assert lrs(scheduler, optimizer, [(epoch, 0), (epoch, 249)]) == [reference_optimizer.param_groups[0]["lr"]] * 2


def test_vm_unet_paper_recipe_is_adamw_on_every_parameter_with_torchs_periodic_cosine():
    network = VMUNet(3, 2, dims=DIMS)
    recipe = PAPER_RECIPES["VMUNet"]
    optimizer, scheduler = scheduled(recipe, network, num_epochs=300, iterations=40)
    assert type(optimizer) is torch.optim.AdamW and len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["weight_decay"] == 1e-2
    assert (recipe.deep_supervision, recipe.clip_norm) == (False, None)
    reference_optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(reference_optimizer, T_max=50, eta_min=1e-5)
    for epoch in range(160):  # past T_max the rate rises again, as in VM-UNet's 300-epoch training
        assert lrs(scheduler, optimizer, [(epoch, 7)])[0] == pytest.approx(
            reference_optimizer.param_groups[0]["lr"], rel=1e-6, abs=1e-12)
        reference_optimizer.step()
        reference.step()


def test_mamba_unet_paper_recipe_is_sgd_with_poly_updated_every_iteration():
    optimizer, scheduler = scheduled(PAPER_RECIPES["MambaUNet"], MambaUNet(1, 4, dims=DIMS), 10, 25)
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.9, False, 1e-4)
    points = [(0, 0), (0, 1), (3, 12), (9, 24)]
    expected = [1e-2 * (1 - (e * 25 + i) / 250) ** 0.9 for e, i in points]  # SSL4MIS's lr_ = base_lr * (1 - it/max)^0.9
    assert lrs(scheduler, optimizer, points) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("schedule", ["poly", "cosine"])
def test_adamw_recipes_warm_up_linearly_then_decay_per_iteration(schedule):
    recipe = named_recipes("MambaUNet")[f"AdamW3em4{schedule.capitalize()}"]
    assert (recipe.lr, recipe.weight_decay, recipe.warmup_fraction) == (3e-4, 0.05, 0.05)
    optimizer, scheduler = scheduled(recipe, MambaUNet(1, 2, dims=DIMS), num_epochs=10, iterations=20)
    # 200 steps, the first round(0.05 * 200) = 10 warm up
    warmup = lrs(scheduler, optimizer, [(0, i) for i in range(10)])
    assert warmup == pytest.approx([3e-4 * (i + 1) / 11 for i in range(10)], rel=1e-12)
    decay_points = [(0, 10), (1, 0), (5, 3), (9, 19)]
    phases = [(e * 20 + i - 10) / 190 for e, i in decay_points]
    if schedule == "poly":
        expected = [3e-4 * (1 - t) ** 0.9 for t in phases]
    else:
        expected = [3e-4 * (1 + math.cos(math.pi * t)) / 2 for t in phases]
    assert lrs(scheduler, optimizer, decay_points) == pytest.approx(expected, rel=1e-12)
    assert expected[0] == 3e-4 and expected[-1] < 3e-4 / 100


@pytest.mark.parametrize("network_class", [MambaUNet, VMUNet])
def test_adamw_groups_follow_vmamba_no_decay_on_norms_biases_a_logs_and_ds(network_class):
    network = network_class(3, 4, dims=DIMS, deep_supervision=True)
    optimizer = build_optimizer(named_recipes("VMUNet")["AdamW1em3Cosine"], network)
    decayed, not_decayed = ({id(p) for p in group["params"]} for group in optimizer.param_groups)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.05, 0.0]
    # what must not decay, found by module type and name rather than by the optimizer's own rule
    expected_free = set()
    for module in network.modules():
        if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)):
            expected_free |= {id(p) for p in module.parameters(recurse=False)}
        for name, parameter in module.named_parameters(recurse=False):
            if name in ("bias", "A_logs", "Ds"):
                expected_free.add(id(parameter))
    every = {id(p) for p in network.parameters()}
    assert not_decayed == expected_free and decayed == every - expected_free and not decayed & not_decayed
    names = {id(p): n for n, p in network.named_parameters()}
    assert any(names[i].endswith("self_attention.A_logs") for i in not_decayed)
    assert any(names[i].endswith("self_attention.in_proj.weight") for i in decayed)
    assert any(names[i].endswith("self_attention.dt_projs_bias") for i in decayed)  # 2-D, not '.bias': VMamba decays it


def test_a_compiled_network_gets_the_same_groups():
    network = MambaUNet(1, 2, dims=DIMS)
    recipe = named_recipes("MambaUNet")["AdamW1em4Poly"]
    plain = [len(g["params"]) for g in build_optimizer(recipe, network).param_groups]
    compiled = torch.compile(network)  # parameter names gain '_orig_mod.'; nothing is compiled until called
    assert [len(g["params"]) for g in build_optimizer(recipe, compiled).param_groups] == plain


def test_each_named_recipe_changes_what_its_name_says():
    def changed(recipe: Recipe) -> set[str]:
        return {f.name for f in dataclasses.fields(Recipe) if getattr(recipe, f.name) != getattr(NNUNET_RECIPE, f.name)}

    for network in ("MambaUNet", "VMUNet"):
        recipes = named_recipes(network)
        assert recipes["nnUNetRecipe"] == NNUNET_RECIPE and recipes["PaperRecipe"] == PAPER_RECIPES[network]
        assert changed(recipes["NoDS"]) == {"deep_supervision"}
        assert changed(recipes["Clip1"]) == {"clip_norm"} and recipes["Clip1"].clip_norm == 1.0
        assert changed(recipes["NoClip"]) == {"clip_norm"} and recipes["NoClip"].clip_norm is None
        adamw = {name: r for name, r in recipes.items() if name.startswith("AdamW")}
        assert sorted({r.lr for r in adamw.values()}) == [1e-4, 3e-4, 1e-3, 2e-3]
        for name, recipe in adamw.items():
            base, modifier = name.rsplit(recipe.schedule.capitalize(), 1)
            assert base.startswith("AdamW") and recipe.optimizer == "adamw"
            assert changed(recipe) <= {"optimizer", "lr", "weight_decay", "decay_all_parameters", "warmup_fraction",
                                       "schedule", "per_iteration", "deep_supervision", "drop_path_rate"}
            assert recipe.deep_supervision == (modifier != "NoDS")
            assert recipe.drop_path_rate == (0.0 if modifier == "NoDropPath" else None)
            if modifier:
                assert changed(recipe) - changed(recipes[base + recipe.schedule.capitalize()]) == (
                    {"deep_supervision"} if modifier == "NoDS" else {"drop_path_rate"})


def test_the_registry_trainers_and_the_defaults_carry_their_recipes():
    names = trainers.recipe_trainer_names()
    assert len(names) == len(set(names)) == 2 * len(named_recipes("MambaUNet"))
    assert trainers.recipe_trainer_names("VMUNet") == [n for n in names if n.startswith("nnUNetTrainerVMUNet_")]
    assert set(names) <= set(trainers.__all__)  # what the shim exports: test_nnunet_integration has nnU-Net find them
    for name in names:
        cls = getattr(trainers, name)
        network = cls.network_class.__name__
        assert name == f"nnUNetTrainer{network}_{name.split('_', 1)[1]}"
        assert cls.recipe == named_recipes(network)[name.split("_", 1)[1]]
    assert trainers.nnUNetTrainerMambaUNet.recipe is DEFAULT_RECIPE["MambaUNet"]
    assert trainers.nnUNetTrainerVMUNet.recipe is DEFAULT_RECIPE["VMUNet"]
    assert trainers.nnUNetTrainerMambaUNet_Pretrained.recipe is DEFAULT_RECIPE["MambaUNet"]
    for network in ("MambaUNet", "VMUNet"):  # the default is also a named variant, so a study can compare with it
        assert DEFAULT_RECIPE[network] in named_recipes(network).values()


@pytest.mark.parametrize("bad, message", [
    ({"optimizer": "adam"}, "optimizer 'adam'"), ({"schedule": "step"}, "schedule 'step'"),
    ({"schedule": "periodic_cosine"}, "cosine_period_epochs exactly"), ({"warmup_fraction": 1.0}, r"\[0, 1\)"),
    ({"lr": 0.0}, "lr and clip_norm must be positive"), ({"clip_norm": 0.0}, "must be positive"),
    ({"drop_path_rate": 1.0}, r"drop_path_rate=1.0: use a value in \[0, 1\), or None")])
def test_a_bad_recipe_is_refused_with_what_to_use(bad, message):
    with pytest.raises(ValueError, match=message):
        Recipe(**bad)

"""The optimiser of a ``Recipe``, with VMamba's weight-decay groups where the recipe asks for them."""
from __future__ import annotations

import torch
from torch import nn

from nnunetv2_mamba.training.recipes import Recipe

#: Parameter names (last component) never decayed in VMamba's groups, besides 1-D parameters and ``*.bias``:
#: the state matrices' logs and the skip gains of SS2D (mamba-ssm marks them ``_no_weight_decay``).
NO_WEIGHT_DECAY = frozenset({"A_logs", "Ds"})


def is_decayed(name: str, parameter: torch.Tensor) -> bool:
    """VMamba's rule (Swin's ``set_weight_decay``): no decay for 1-D tensors (norms), biases and ``NO_WEIGHT_DECAY``."""
    return parameter.ndim > 1 and not name.endswith(".bias") and name.rsplit(".", 1)[-1] not in NO_WEIGHT_DECAY


def parameter_groups(network: nn.Module, weight_decay: float) -> list[dict]:
    """[{decayed params, weight_decay}, {the others, weight_decay 0}] over the trainable parameters, empty groups
    left out."""
    decayed, not_decayed = [], []
    for name, parameter in network.named_parameters():
        if parameter.requires_grad:
            (decayed if is_decayed(name, parameter) else not_decayed).append(parameter)
    groups = [{"params": decayed, "weight_decay": weight_decay}, {"params": not_decayed, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def build_optimizer(recipe: Recipe, network: nn.Module) -> torch.optim.Optimizer:
    """SGD or AdamW over ``network`` at the recipe's peak rate (the scheduler sets the rate of each step)."""
    if recipe.decay_all_parameters:
        params = network.parameters()
    else:
        params = parameter_groups(network, recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, recipe.lr, weight_decay=recipe.weight_decay, momentum=recipe.momentum,
                               nesterov=recipe.nesterov)
    return torch.optim.AdamW(params, recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)

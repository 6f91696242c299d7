"""The one base every Mamba trainer shares: builds a 2D or 3D VSS U-Net from the plans and drives its deep
supervision."""
from __future__ import annotations

import inspect
import os
import pydoc

from torch import nn
from torch._dynamo import OptimizedModule

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunetv2_mamba.nets.geometry import factors_for_spacing
from nnunetv2_mamba.training.checkpoints import SafeCheckpoints
from nnunetv2_mamba.training.nonfinite import NonFiniteLossGuard
from nnunetv2_mamba.training.recipe_trainer import RecipeTrainer

COMPILE_ENV = "nnUNet_compile"


def unwrap_network(network: nn.Module) -> nn.Module:
    """The bare network inside DDP and/or torch.compile wrappers."""
    if isinstance(network, nn.parallel.DistributedDataParallel):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return network


class CompileOnRequest:
    """Trainer mixin: torch.compile only when ``nnUNet_compile`` asks for it (nnU-Net compiles by default on CUDA),
    so that every trainer of a comparison runs with the same setting."""

    def _do_i_compile(self):
        if os.environ.get(COMPILE_ENV, "").lower() not in ("true", "1", "t"):
            return False
        return super()._do_i_compile()


class VSSUNetTrainerBase(RecipeTrainer, NonFiniteLossGuard, SafeCheckpoints, CompileOnRequest, nnUNetTrainer):
    """nnU-Net's trainer with a VSS U-Net (``network_class``) in place of the plans' CNN.

    Network kwargs: ``default_network_kwargs`` (the paper configuration), replaced by the plans' ``arch_kwargs``
    when the plans name this very network class (plans written by our planner), then the recipe's
    ``drop_path_rate`` where it sets one, then ``fixed_network_kwargs``.
    Plans for another architecture (stock ``nnUNetPlans``) only contribute their patch size, which the network
    pads internally to a multiple of 32 (2d), and for 3d configurations (3d_fullres, 3d_lowres, the cascade) their
    spacing and patch size, from which the per-axis patch and merge factors follow (nets/geometry.py,
    ``factors_for_spacing``). Optimiser, schedule, deep supervision and clipping come from the class's ``recipe``
    (``RecipeTrainer``). ``build_network_architecture`` is a classmethod with nnU-Net 2.8.1's
    arguments, so the predictor (which never instantiates the trainer) builds the same network. Steps with a
    non-finite loss are skipped and logged; checkpoints are written atomically and read with weights_only=True;
    torch.compile only on request.
    """

    network_class: type[nn.Module]
    default_network_kwargs: dict = {}
    fixed_network_kwargs: dict = {}

    @classmethod
    def network_kwargs(cls, configuration_manager: ConfigurationManager) -> dict:
        """Keyword arguments for ``network_class`` besides channels, classes and deep supervision."""
        kwargs = dict(cls.default_network_kwargs)
        if pydoc.locate(configuration_manager.network_arch_class_name) is cls.network_class:
            kwargs.update(configuration_manager.network_arch_init_kwargs)
        if cls.recipe.drop_path_rate is not None:
            kwargs["drop_path_rate"] = cls.recipe.drop_path_rate
        kwargs.update(cls.fixed_network_kwargs)
        kwargs.pop("deep_supervision", None)
        patch_size = configuration_manager.patch_size
        if "spatial_dims" in kwargs and kwargs["spatial_dims"] != len(patch_size):
            raise ValueError(f"the plans' network kwargs say spatial_dims={kwargs['spatial_dims']} but the "
                             f"configuration's patch size {list(patch_size)} has {len(patch_size)} axes; re-plan with "
                             f"nnunetv2_mamba plan_and_preprocess")
        if len(patch_size) == 3:
            kwargs["spatial_dims"] = 3
            if "patch_size" not in kwargs and "merge_factors" not in kwargs:
                dims = kwargs.get("dims", inspect.signature(cls.network_class).parameters["dims"].default)
                kwargs["patch_size"], kwargs["merge_factors"] = factors_for_spacing(
                    configuration_manager.spacing, patch_size, len(dims))
        return kwargs

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return cls.network_class(num_input_channels, num_output_channels,
                                 deep_supervision=enable_deep_supervision,
                                 **cls.network_kwargs(configuration_manager))

    def _get_deep_supervision_scales(self):
        """Per-output, per-axis scales of the network's outputs (highest resolution first), or None without DS."""
        if not self.enable_deep_supervision:
            return None
        num_axes = len(self.configuration_manager.patch_size)
        return [list(scale) if isinstance(scale, list) else [scale] * num_axes
                for scale in unwrap_network(self.network).deep_supervision_scales]

    def set_deep_supervision_enabled(self, enabled: bool):
        """Switch the decoder's list output; stays off when the network was built without deep supervision."""
        unwrap_network(self.network).decoder.deep_supervision = enabled and self.enable_deep_supervision

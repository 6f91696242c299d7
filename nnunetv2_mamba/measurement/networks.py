"""The networks the benchmarks and GPU checks measure, and nnU-Net's training step and inference on a fixed batch.

MambaUNet and VMUNet are built as their trainers build them; PlainConvUNet as nnU-Net's default 2d (3d_fullres)
planner builds it for a patch with isotropic spacing: the topology from nnU-Net's ``get_pool_and_conv_props``
(feature maps down to 4), ``base_features`` doubling to at most 512 (320 in 3D), two 3x3(x3) convolutions per
stage and per decoder stage, InstanceNorm, LeakyReLU. Patches are (H, W) or (D, H, W).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

NETWORKS = ("MambaUNet", "VMUNet", "PlainConvUNet")
MAMBA_NETWORKS = ("MambaUNet", "VMUNet")
BASELINE = "PlainConvUNet"


def plain_conv_unet_kwargs(patch: tuple[int, ...], base_features: int = 32) -> dict:
    """``arch_kwargs`` of nnU-Net's default plans for ``patch``; ValueError if nnU-Net would change the patch."""
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
    shape = tuple(patch)
    n = len(shape)
    _, strides, kernel_sizes, planned_patch, _ = get_pool_and_conv_props((1.0,) * n, shape, 4, 999999)
    planned = tuple(int(edge) for edge in planned_patch)
    if planned != shape:
        raise ValueError(f"nnU-Net would change a {shape} patch to {planned}: use a patch that is a multiple of "
                         f"2^pooling steps, such as {planned}")
    stages, max_features = len(strides), 512 if n == 2 else 320
    return {"n_stages": stages,
            "features_per_stage": [min(max_features, base_features * 2 ** i) for i in range(stages)],
            "conv_op": f"torch.nn.modules.conv.Conv{n}d", "kernel_sizes": kernel_sizes, "strides": strides,
            "n_conv_per_stage": [2] * stages, "n_conv_per_stage_decoder": [2] * (stages - 1), "conv_bias": True,
            "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{n}d",
            "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}


def build_network(name: str, patch: tuple[int, ...], deep_supervision: bool, input_channels: int = 1,
                  num_classes: int = 4, plain_base_features: int = 32, **mamba_kwargs) -> torch.nn.Module:
    """One of :data:`NETWORKS` for ``patch`` (its length decides 2D or 3D), initialised as its trainer does;
    ``mamba_kwargs`` go to MambaUNet / VMUNet (e.g. smaller ``dims`` and ``depths``)."""
    if name == BASELINE:
        from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
        return get_network_from_plans("dynamic_network_architectures.architectures.unet.PlainConvUNet",
                                      plain_conv_unet_kwargs(patch, plain_base_features),
                                      ("conv_op", "norm_op", "dropout_op", "nonlin"), input_channels, num_classes,
                                      deep_supervision=deep_supervision)
    if name not in MAMBA_NETWORKS:
        raise ValueError(f"unknown network {name!r}: use one of {', '.join(NETWORKS)}")
    from nnunetv2_mamba.nets import MambaUNet, VMUNet
    network_class = {"MambaUNet": MambaUNet, "VMUNet": VMUNet}[name]
    return network_class(input_channels, num_classes, deep_supervision=deep_supervision,
                         **{"spatial_dims": len(patch), **mamba_kwargs})


def nnunet_loss(num_outputs: int) -> Callable:
    """nnUNetTrainer._build_loss without regions: Dice + CE (batch Dice), deep-supervision weights."""
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    weights = torch.tensor([1 / 2 ** i for i in range(num_outputs)])
    weights[-1] = 0
    return DeepSupervisionWrapper(loss, (weights / weights.sum()).tolist())


def training_step(network: torch.nn.Module, patch: tuple[int, ...], batch: int, device: str | torch.device,
                  amp: bool, input_channels: int = 1, num_classes: int = 4) -> Callable[[], torch.Tensor]:
    """One nnU-Net training iteration of ``network`` (deep supervision on, on ``device``) on a fixed random batch,
    returning its detached loss: nnUNetTrainer.train_step (autocast and its GradScaler if ``amp``), SGD (lr 1e-2,
    momentum 0.99, Nesterov, weight decay 3e-5), gradient clipping at 12."""
    device = torch.device(device)
    network.train()
    image = torch.randn(batch, input_channels, *patch, device=device)
    label = torch.randint(0, num_classes, (batch, 1, *patch), device=device).float()
    with torch.no_grad(), torch.autocast(device.type, enabled=amp):
        shapes = [tuple(output.shape[2:]) for output in network(image)]
    targets = [F.interpolate(label, size=shape, mode="nearest") for shape in shapes]  # the data loader's job
    loss = nnunet_loss(len(targets))
    optimizer = torch.optim.SGD(network.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=amp):
            value = loss(network(image), targets)
        scaler.scale(value).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(network.parameters(), 12)
        scaler.step(optimizer)
        scaler.update()
        return value.detach()
    return step


def inference(network: torch.nn.Module, patch: tuple[int, ...], device: str | torch.device,
              amp: bool, input_channels: int = 1) -> Callable[[], torch.Tensor]:
    """One eval-mode, no-grad forward of a single patch (nnU-Net's predictor without mirroring), its logits."""
    device = torch.device(device)
    network.eval()
    image = torch.randn(1, input_channels, *patch, device=device)

    def predict() -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device.type, enabled=amp):
            return network(image)
    return predict


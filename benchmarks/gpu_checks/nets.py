"""Check ``nets_2d``: MambaUNet, VMUNet and nnU-Net's PlainConvUNet at a 2d plan's patch and batch — an AMP
training step as nnU-Net's ``train_step`` runs it (iterations/s, peak memory, finite loss) and inference per image.

The Mamba networks train with the scan backend the project chooses (``auto``); ``extra_backend_networks`` are also
trained with every other backend that runs on the device. PlainConvUNet is built as nnU-Net builds it from its
plans (``get_network_from_plans`` with the default 2d planner's topology for the patch). All networks run eager
(nnU-Net would torch.compile its own CNN on CUDA; our Mamba trainers do not compile).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nnunetv2_mamba.ops import backends

from gpu_checks.measure import backend_device, median, milliseconds, peak_memory, scan_backend, timed_runs
from gpu_checks.registry import Outcome, register, run_case, skip_row

NETWORKS = ("MambaUNet", "VMUNet", "PlainConvUNet")
MAMBA_NETWORKS = ("MambaUNet", "VMUNet")
TRAIN_SECONDS = 30.0  # timed training steps of one network stop after this long


def build_network(name: str, settings, deep_supervision: bool) -> torch.nn.Module:
    """One of NETWORKS with ``settings``' channels and classes, initialised as its trainer does."""
    if name == "PlainConvUNet":
        from bench_networks import plain_conv_unet_kwargs
        from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
        return get_network_from_plans("dynamic_network_architectures.architectures.unet.PlainConvUNet",
                                      plain_conv_unet_kwargs(settings.patch, settings.plain_base_features),
                                      ("conv_op", "norm_op", "dropout_op", "nonlin"), settings.input_channels,
                                      settings.num_classes, deep_supervision=deep_supervision)
    from nnunetv2_mamba.nets import MambaUNet, VMUNet
    network_class = {"MambaUNet": MambaUNet, "VMUNet": VMUNet}[name]
    return network_class(settings.input_channels, settings.num_classes, deep_supervision=deep_supervision,
                         **settings.network_kwargs.get(name, {}))


def training_step(name: str, settings):
    """(one nnU-Net AMP training iteration on a fixed random batch returning its detached loss, the network)."""
    from bench_networks import nnunet_loss
    device = torch.device(settings.device)
    network = build_network(name, settings, deep_supervision=True).to(device).train()
    image = torch.randn(settings.batch, settings.input_channels, *settings.patch, device=device)
    label = torch.randint(0, settings.num_classes, (settings.batch, 1, *settings.patch), device=device).float()
    with torch.no_grad(), torch.autocast(device.type):
        shapes = [tuple(output.shape[2:]) for output in network(image)]
    targets = [F.interpolate(label, size=shape, mode="nearest") for shape in shapes]  # the data loader's job
    loss = nnunet_loss(len(targets))
    optimizer = torch.optim.SGD(network.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
    scaler = torch.amp.GradScaler(device.type)

    def step() -> torch.Tensor:  # nnUNetTrainer.train_step with its GradScaler branch
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=True):
            value = loss(network(image), targets)
        scaler.scale(value).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(network.parameters(), 12)
        scaler.step(optimizer)
        scaler.update()
        return value.detach()
    return step, network


def measure_training(name: str, settings) -> Outcome:
    torch.manual_seed(0)
    with peak_memory(settings.device) as memory:
        step, network = training_step(name, settings)
        losses = []
        times, _ = timed_runs(lambda: losses.append(step()), settings.device, settings.warmup, settings.repeats,
                              TRAIN_SECONDS)
    values = [value.item() for value in losses]
    finite = all(math.isfinite(value) for value in values)
    parameters = sum(p.numel() for p in network.parameters())
    peak = f", peak {memory['peak_mib']:.0f} MiB" if memory["peak_mib"] is not None else ""
    return Outcome(finite, f"{1000 / median(times):.3g} it/s{peak}, loss {values[0]:.3g} -> {values[-1]:.3g} "
                           f"({'finite' if finite else 'NOT finite'}), {parameters:,} parameters",
                   f"step {milliseconds(times)}",
                   {"times_ms": times, "peak_mib": memory["peak_mib"], "losses": values, "parameters": parameters})


def measure_inference(name: str, settings) -> Outcome:
    """One patch, batch 1, eval mode, no grad, autocast (nnU-Net's predictor without mirroring)."""
    torch.manual_seed(0)
    device = torch.device(settings.device)
    network = build_network(name, settings, deep_supervision=False).to(device).eval()
    image = torch.randn(1, settings.input_channels, *settings.patch, device=device)

    def predict() -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device.type):
            return network(image)
    with peak_memory(settings.device) as memory:
        times, logits = timed_runs(predict, settings.device, settings.warmup, settings.repeats,
                                   settings.max_measure_seconds)
    expected = (1, settings.num_classes, *settings.patch)
    passed = tuple(logits.shape) == expected and bool(torch.isfinite(logits).all())
    peak = f", peak {memory['peak_mib']:.0f} MiB" if memory["peak_mib"] is not None else ""
    return Outcome(passed, f"logits {tuple(logits.shape)}, {'finite' if passed else 'NOT as expected'}{peak}",
                   f"{milliseconds(times)} per image", {"times_ms": times, "peak_mib": memory["peak_mib"]})


def scan_label(name: str, backend: str) -> str:
    return "" if name not in MAMBA_NETWORKS else f", scan {backend}"


def auto_backend_rows(settings, check: str):
    """Rows of an AMP training step, then inference, of every one of NETWORKS with the auto scan backend."""
    if settings.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # as nnU-Net's run_training sets it
    try:
        auto, _ = backends.choose_backend("auto", torch.device(settings.device))
    except Exception as error:  # reported by the backends check; here only the label loses the name
        auto = f"failed: {error}"
    where = "x".join(map(str, settings.patch))
    with scan_backend("auto"):
        for name in NETWORKS:
            yield run_case(settings, check, f"{name} AMP training step, batch {settings.batch}, {where}"
                           f"{scan_label(name, 'auto = ' + auto)}", lambda: measure_training(name, settings))
        for name in NETWORKS:
            yield run_case(settings, check, f"{name} inference, 1 x {where}{scan_label(name, 'auto = ' + auto)}",
                           lambda: measure_inference(name, settings))
    return auto


@register("nets_2d", "MambaUNet, VMUNet, PlainConvUNet at the 2d plan: AMP training step, inference per image",
          timeout_s=300)
def networks_2d(settings):
    auto = yield from auto_backend_rows(settings, "nets_2d")
    where = "x".join(map(str, settings.patch))
    for name in settings.extra_backend_networks:
        for backend in backends.BACKENDS:
            if backend == auto:
                continue
            device, reason = backend_device(backend, settings.device)
            case = f"{name} AMP training step, batch {settings.batch}, {where}, scan {backend}"
            if device != settings.device:
                yield skip_row("nets_2d", case, reason if device is None else f"runs on {device} only here")
                continue
            with scan_backend(backend):
                yield run_case(settings, "nets_2d", case, lambda: measure_training(name, settings))


@register("nets_3d", "MambaUNet, VMUNet (SS3D, K = 6) and nnU-Net's 3d PlainConvUNet at a 64^3 patch, batch 2: "
          "AMP training step, inference per patch", timeout_s=240)
def networks_3d(settings):
    yield from auto_backend_rows(settings.in_3d(), "nets_3d")

"""The network checks' measurements (``nets_2d``, ``nets_3d``): MambaUNet, VMUNet and nnU-Net's PlainConvUNet at a
plan's patch and batch, an AMP training step as nnU-Net's ``train_step`` runs it (iterations/s, peak memory, finite
loss) and inference per image. All networks run eager (nnU-Net would torch.compile its own CNN on CUDA; our Mamba
trainers do not compile); the networks: nnunetv2_mamba/measurement/networks.py."""
from __future__ import annotations

import math

import torch

from nnunetv2_mamba.measurement import median, peak_memory, timed_runs
from nnunetv2_mamba.measurement.networks import MAMBA_NETWORKS, build_network, inference, training_step
from nnunetv2_mamba.ops import backends

from gpu_outcome import Outcome, in_ms, milliseconds
from gpu_settings import scan_backend

TRAIN_SECONDS = 30.0  # timed training steps of one network stop after this long


def network(name: str, settings, deep_supervision: bool) -> torch.nn.Module:
    return build_network(name, settings.patch, deep_supervision, settings.input_channels, settings.num_classes,
                         settings.plain_base_features, **settings.network_kwargs.get(name, {})).to(settings.device)


def peak_text(memory, device: str) -> str:
    return f", peak {memory.peak_mib:.0f} MiB" if device.startswith("cuda") else ""


def measure_training(name: str, settings) -> Outcome:
    """peak = the allocator's peak from building the network to the last step (CUDA only)."""
    torch.manual_seed(0)
    with peak_memory(settings.device) as memory:
        built = network(name, settings, deep_supervision=True)
        step = training_step(built, settings.patch, settings.batch, settings.device, amp=True,
                             input_channels=settings.input_channels, num_classes=settings.num_classes)
        losses = []
        times, _ = timed_runs(lambda: losses.append(step()), settings.device, settings.warmup, settings.repeats,
                              TRAIN_SECONDS)
    values = [value.item() for value in losses]
    finite = all(math.isfinite(value) for value in values)
    parameters = sum(p.numel() for p in built.parameters())
    peak = memory.peak_mib if settings.device.startswith("cuda") else None
    return Outcome(finite, f"{1 / median(times):.3g} it/s{peak_text(memory, settings.device)}, loss "
                           f"{values[0]:.3g} -> {values[-1]:.3g} ({'finite' if finite else 'NOT finite'}), "
                           f"{parameters:,} parameters", f"step {milliseconds(times)}",
                   {"times_ms": in_ms(times), "peak_mib": peak, "losses": values, "parameters": parameters})


def measure_inference(name: str, settings) -> Outcome:
    """One patch, batch 1, eval mode, no grad, autocast (nnU-Net's predictor without mirroring)."""
    torch.manual_seed(0)
    predict = inference(network(name, settings, deep_supervision=False), settings.patch, settings.device, amp=True,
                        input_channels=settings.input_channels)
    with peak_memory(settings.device) as memory:
        times, logits = timed_runs(predict, settings.device, settings.warmup, settings.repeats,
                                   settings.max_measure_seconds)
    expected = (1, settings.num_classes, *settings.patch)
    passed = tuple(logits.shape) == expected and bool(torch.isfinite(logits).all())
    peak = memory.peak_mib if settings.device.startswith("cuda") else None
    return Outcome(passed, f"logits {tuple(logits.shape)}, {'finite' if passed else 'NOT as expected'}"
                           f"{peak_text(memory, settings.device)}", f"{milliseconds(times)} per image",
                   {"times_ms": in_ms(times), "peak_mib": peak})


def auto_label(name: str, settings) -> str:
    """", scan auto = <backend>" for a Mamba network (nothing for the CNN)."""
    if name not in MAMBA_NETWORKS:
        return ""
    try:
        auto, _ = backends.choose_backend("auto", torch.device(settings.device))
    except Exception as error:  # reported by the backends check; here only the label loses the name
        auto = f"failed: {error}"
    return f", scan auto = {auto}"


def where(settings) -> str:
    return "x".join(map(str, settings.patch))


def training_case(name: str, settings) -> str:
    return f"{name} AMP training step, batch {settings.batch}, {where(settings)}"


def inference_case(name: str, settings) -> str:
    return f"{name} inference, 1 x {where(settings)}"


def check_network(kind: str, name: str, settings, report) -> None:
    """Run one training (``kind`` "train") or inference case with the auto scan backend and record it."""
    if settings.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # as nnU-Net's run_training sets it
    case = training_case(name, settings) if kind == "train" else inference_case(name, settings)
    report.case(case + auto_label(name, settings))
    with scan_backend("auto"):
        outcome = (measure_training if kind == "train" else measure_inference)(name, settings)
    report.record(outcome)
    assert outcome.passed, outcome.result

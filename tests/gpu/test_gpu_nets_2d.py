"""Check ``nets_2d``: MambaUNet, VMUNet and nnU-Net's PlainConvUNet at the 2d plan's patch and batch (default
224x192, batch 12), an AMP training step and inference per image with the auto scan backend
(tests/gpu/gpu_networks.py); ``extra_backend_networks`` also train with every other backend that runs here."""
import pytest
import torch

from nnunetv2_mamba.measurement.networks import NETWORKS
from nnunetv2_mamba.ops import backends

from gpu_networks import check_network, measure_training, training_case
from gpu_settings import backend_device, current_settings, scan_backend

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(300)]
SETTINGS = current_settings()


@pytest.mark.parametrize("kind,name", [("train", name) for name in NETWORKS] + [("infer", name) for name in NETWORKS])
def test_network_with_the_auto_backend(kind, name, settings, report):
    check_network(kind, name, settings, report)


def other_backends(settings) -> list:
    """(network, backend) of ``extra_backend_networks`` and every backend but the auto choice (decided here, at
    collection, only where the device under test exists: elsewhere the checks skip anyway)."""
    if not settings.extra_backend_networks or not torch.cuda.is_available():
        return [(name, backend) for name in settings.extra_backend_networks for backend in backends.BACKENDS]
    auto, _ = backends.choose_backend("auto", torch.device(settings.device))
    return [(name, backend) for name in settings.extra_backend_networks for backend in backends.BACKENDS
            if backend != auto]


@pytest.mark.parametrize("name,backend", other_backends(SETTINGS))
def test_network_trains_with_every_other_backend(name, backend, settings, report):
    report.case(f"{training_case(name, settings)}, scan {backend}")
    device, reason = backend_device(backend, settings.device)
    if device != settings.device:
        pytest.skip(reason if device is None else f"runs on {device} only here")
    with scan_backend(backend):
        outcome = measure_training(name, settings)
    report.record(outcome)
    assert outcome.passed, outcome.result

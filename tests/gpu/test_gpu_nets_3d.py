"""Check ``nets_3d``: MambaUNet, VMUNet (SS3D, K = 6) and nnU-Net's 3d PlainConvUNet at a 64^3 patch, batch 2 (a dry
run: 32^3, batch 1): an AMP training step and inference per patch with the auto scan backend
(tests/gpu/gpu_networks.py)."""
import pytest

from nnunetv2_mamba.measurement.networks import NETWORKS

from gpu_networks import check_network

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(240)]


@pytest.mark.parametrize("kind,name", [("train", name) for name in NETWORKS] + [("infer", name) for name in NETWORKS])
def test_network_with_the_auto_backend(kind, name, settings, report):
    check_network(kind, name, settings.in_3d(), report)

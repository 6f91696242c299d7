"""The end-to-end tests call nnU-Net's console scripts (nnUNetv2_train, ...) by name, as a user types them:
put the scripts folder of the interpreter running the tests first on PATH, so an unactivated virtualenv
(``venv/bin/python -m pytest``, as scripts/run.sh and CI run it) finds its own nnU-Net. Fixtures shared by several
test files live here too."""
import os
import sys

import pytest

os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(params=["torch", "cpu"])
def cpu_scan_backend(request, monkeypatch):
    """The test runs once per CPU scan backend, with $nnUNet_mamba_scan set to it (skipped where it is unavailable,
    e.g. cpu without a C compiler); use with ``pytestmark = pytest.mark.usefixtures("cpu_scan_backend")``."""
    from nnunetv2_mamba.ops.backends import availability

    if not availability(request.param).available:
        pytest.skip(f"backend {request.param} unavailable: {availability(request.param).reason}")
    monkeypatch.setenv("nnUNet_mamba_scan", request.param)
    return request.param

"""Check ``backends``: ``nnunetv2_mamba doctor``, the auto backend's choice, each kernel backend's smoke test."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nnunetv2_mamba.ops import backends

from gpu_outcome import Outcome
from gpu_settings import backend_device

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(240)]
REPOSITORY = Path(__file__).resolve().parents[2]
KERNEL_BACKENDS = [name for name in backends.BACKENDS if name != "torch"]  # torch is the yardstick: no smoke test


def test_doctor(settings, report):
    """``nnunetv2_mamba doctor`` of this checkout in a fresh interpreter exits 0 and names a choice."""
    report.case("nnunetv2_mamba doctor")
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), environment.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "nnunetv2_mamba", "doctor"], capture_output=True, text=True,
                          timeout=180, env=environment, cwd=REPOSITORY)
    chosen = next((line for line in done.stdout.splitlines() if line.startswith("chosen on")), "")
    outcome = Outcome(done.returncode == 0 and bool(chosen), chosen or f"exit code {done.returncode}, no choice "
                      f"printed", data={"log": (done.stdout + done.stderr).strip(), "exit_code": done.returncode})
    report.record(outcome)
    assert outcome.passed, outcome.result


def test_auto_choice(settings, report):
    report.case(f"auto choice on {settings.device}")
    name, reason = backends.choose_backend("auto", torch.device(settings.device))
    report.record(Outcome(True, f"{name}: {reason}", data={"backend": name, "reason": reason}))


@pytest.mark.parametrize("name", KERNEL_BACKENDS)
def test_smoke_test(name, settings, report):
    device, reason = backend_device(name, settings.device)
    if device is None:
        report.case(f"smoke test of {name}")
        pytest.skip(reason)
    report.case(f"smoke test of {name} on {device}")
    failure = backends.smoke_test_failure(name, device)
    outcome = Outcome(failure is None, failure or f"a small scan on {device} matches the torch scan")
    report.record(outcome)
    assert outcome.passed, outcome.result

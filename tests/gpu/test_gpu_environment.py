"""Check ``environment``: the machine (GPU, driver, CUDA, library versions, CPU), and that the device under test is
there. gpu_check.py runs it first and stops if it fails; under a plain ``pytest -m gpu`` without CUDA it skips."""
import dataclasses
import os

import pytest

from nnunetv2_mamba.measurement.machine import machine_facts

from gpu_outcome import Outcome
from gpu_settings import MODE_VARIABLE, current_settings

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(60)]


def test_device_under_test(report):
    report.case("device under test")
    settings = current_settings()
    machine = machine_facts()
    if settings.dry_run:
        outcome = Outcome(True, "dry run on the CPU (tiny shapes, Triton interpreted)", data={"machine": machine})
    elif machine["gpu"] is None:
        if not os.environ.get(MODE_VARIABLE):
            pytest.skip("needs a CUDA device (torch.cuda.is_available() is False): run it on a GPU machine, or "
                        "python benchmarks/gpu_check.py --dry-run on the CPU")
        outcome = Outcome(False, "no CUDA device visible to torch (torch.cuda.is_available() is False): run this "
                                 "on a GPU machine, or use --dry-run to exercise it on the CPU",
                          data={"machine": machine})
    else:
        outcome = Outcome(True, f"{machine['gpu']} (compute capability {machine['capability']}, "
                                f"{machine['gpu_memory_gib']} GiB, {machine['multiprocessors']} SMs)",
                          data={"machine": machine})
    outcome.data["settings"] = dataclasses.asdict(settings)
    report.record(outcome)
    assert outcome.passed, outcome.result

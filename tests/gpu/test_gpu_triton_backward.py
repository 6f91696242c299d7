"""Check ``triton_backward``: the Triton scan's forward and backward against the torch scan in fp32 at the scans the
networks run in training (the training batch, the checked encoder stages of the 2d plan and the first of them in
the 3d one, N = 16), and the memory it takes beyond what it returns against the planner's workspace term.

The backward's adjoint runs as a forward associative scan over each chunk read backwards and a scratch tile
(ops/scan_triton.py), a code path only a GPU compiles for real; the errors use mamba-ssm's test tolerances as the
``scan`` check does. Memory (CUDA): the peak during forward + backward beyond what it returns (output and
gradients: the saved chunk states, the dB/dC partials and scratch tiles), reported beside
``ops/triton_blocks.backward_workspace_floats`` (the planner's term); PASS needs only the errors.
"""
from __future__ import annotations

import math

import pytest
import torch

from nnunetv2_mamba.measurement import peak_memory
from nnunetv2_mamba.measurement.memory import MIB
from nnunetv2_mamba.ops.backends import availability
from nnunetv2_mamba.ops.triton_blocks import backward_workspace_floats

from gpu_outcome import Outcome
from gpu_scan import as_fp32, compare, forward_backward, scan_inputs, summary
from gpu_settings import DIRECTIONS, backend_device, current_settings

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(180)]
VOLUME_DIRECTIONS = 6


def training_scans(settings) -> list[tuple[str, int, int, int]]:
    """(where, directions K, channels d = K·2C, length L) of the scans at the training batch: each of the checked
    encoder stages of the 2d plan, and the first of them in the 3d plan (a volume's K = 6 directions)."""
    scans = [(f"2d stage {s}, C={C}, {H}x{W}", DIRECTIONS, DIRECTIONS * 2 * C, H * W)
             for s, (C, H, W) in zip(settings.scan_stages, settings.stage_shapes())]
    stage = settings.scan_stages[0]
    volume = [edge // (4 * 2 ** stage) for edge in settings.patch_3d]
    scans.append((f"3d stage {stage}, C={settings.dims[stage]}, {'x'.join(map(str, volume))}", VOLUME_DIRECTIONS,
                  VOLUME_DIRECTIONS * 2 * settings.dims[stage], math.prod(volume)))
    return scans


def cases(settings) -> list:
    device, reason = backend_device("triton", settings.device)
    if device is None:
        return [pytest.param(None, None, None, None, marks=pytest.mark.skip(reason=reason), id="triton")]
    return [pytest.param(directions, channels, length, device, id=f"{where}: d={channels} L={length} "
                         f"B={settings.batch} N={settings.d_state} on {device}")
            for where, directions, channels, length in training_scans(settings)]


@pytest.mark.parametrize("directions,channels,length,device", cases(current_settings()))
def test_triton_backward_matches_the_torch_scan(directions, channels, length, device, settings, report, request):
    report.case(request.node.callspec.id)
    batch = settings.batch
    inputs = scan_inputs(batch, channels, length, settings.d_state, device)
    if directions != DIRECTIONS:  # scan_inputs makes one B/C group per 2d direction
        inputs["B"], inputs["C"] = (torch.randn(batch, directions, settings.d_state, length, device=device)
                                    for _ in range(2))
    expected = {k: v.detach() for k, v in forward_backward(availability("torch").function, as_fp32(inputs)).items()}
    returned = sum(t.numel() * t.element_size() for t in expected.values())  # what the Triton call returns too
    with peak_memory(device) as memory:
        found = forward_backward(availability("triton").function, inputs)
    table = compare(found, expected, "float32")
    passed, text = summary(table)
    model_mib = 4 * backward_workspace_floats(batch, channels, directions, settings.d_state, length) / MIB
    if not device.startswith("cuda"):
        outcome = Outcome(passed, f"{text}; planner's workspace term {model_mib:.3g} MiB", data={"errors": table})
    else:
        extra_mib = memory.extra_mib - returned / MIB
        outcome = Outcome(passed, f"{text}; memory beyond the output and gradients {extra_mib:.3g} MiB, planner's "
                                  f"workspace term {model_mib:.3g} MiB",
                          data={"errors": table, "extra_mib": extra_mib, "model_mib": model_mib,
                                "peak_mib": memory.peak_mib, "base_mib": memory.base_mib})
    report.record(outcome)
    assert outcome.passed, outcome.result

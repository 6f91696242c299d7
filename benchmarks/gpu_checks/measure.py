"""Timing (CUDA events on the GPU), error measures, peak memory, and which device each scan backend runs on."""
from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from typing import Callable

import torch

from nnunetv2_mamba.ops import backends
from nnunetv2_mamba.ops.backends import ENV_VARIABLE, availability

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def timed_runs(run: Callable[[], object], device: str, warmup: int, repeats: int,
               max_seconds: float) -> tuple[list[float], object]:
    """(milliseconds of each timed call of ``run``, the last call's result).

    ``warmup`` untimed calls first (fewer if they already took ``max_seconds``), then ``repeats`` timed ones, cut
    short once they took ``max_seconds`` (at least one runs). CUDA: each call between two CUDA events.
    """
    result, started = None, time.perf_counter()
    for _ in range(warmup):
        result = run()
        if time.perf_counter() - started > max_seconds:
            break
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    times, started = [], time.perf_counter()
    for _ in range(max(1, repeats)):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            result = run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            result = run()
            times.append(1e3 * (time.perf_counter() - begin))
        if time.perf_counter() - started > max_seconds:
            break
    return times, result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def ms(value: float) -> str:
    """Milliseconds with 3 significant digits, never in exponent notation."""
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def milliseconds(times: list[float]) -> str:
    return f"{ms(median(times))} ms (median of {len(times)})"


def errors(found: torch.Tensor, expected: torch.Tensor, rtol: float = 0.0, atol: float = 0.0) -> dict:
    """max_abs = max |found - expected|; max_rel = max_abs / max |expected|; tol_ratio = the largest
    |found - expected| / (atol + rtol |expected|), <= 1 exactly where torch.allclose(found, expected, rtol, atol)
    holds (inf if anything is not finite, or where rtol = atol = 0 and the values differ)."""
    if found.shape != expected.shape:
        raise ValueError(f"shape {tuple(found.shape)} where {tuple(expected.shape)} was expected")
    found, expected = found.detach().double(), expected.detach().double()
    difference = (found - expected).abs()
    max_abs = difference.max().item() if difference.numel() else 0.0
    scale = expected.abs().max().item() if expected.numel() else 0.0
    bound = atol + rtol * expected.abs()
    ratio = torch.where(difference == 0, torch.zeros_like(difference), difference / bound)
    tol_ratio = ratio.max().item() if ratio.numel() else 0.0
    if not (torch.isfinite(found).all() and torch.isfinite(expected).all()):
        max_abs = tol_ratio = math.inf
    return {"max_abs": max_abs, "max_rel": max_abs / scale if scale else max_abs, "tol_ratio": tol_ratio}


def worst(table: dict[str, dict], key: str) -> tuple[str, dict]:
    """(name, errors) of the entry with the largest ``key`` (NaN counts as largest)."""
    return max(table.items(), key=lambda item: math.inf if math.isnan(item[1][key]) else item[1][key])


@contextmanager
def peak_memory(device: str):
    """Yields a dict that holds, on exit, "peak_mib" = torch.cuda.max_memory_allocated during the block and
    "base_mib" = the memory allocated when it began (both None off CUDA)."""
    result = {"peak_mib": None, "base_mib": None}
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2 ** 20
    yield result
    if cuda:
        torch.cuda.synchronize()
        result.update(peak_mib=torch.cuda.max_memory_allocated() / 2 ** 20, base_mib=base)


@contextmanager
def scan_backend(name: str):
    """Run the block with ``$nnUNet_mamba_scan=name`` (what SS2D and the cross scan read), then restore it."""
    previous = os.environ.get(ENV_VARIABLE)
    os.environ[ENV_VARIABLE] = name
    try:
        yield
    finally:
        if previous is None:
            del os.environ[ENV_VARIABLE]
        else:
            os.environ[ENV_VARIABLE] = previous


def backend_device(name: str, device_under_test: str) -> tuple[str | None, str]:
    """(device backend ``name`` runs on: the device under test, else the CPU, else None; why / what it is)."""
    probe = availability(name)
    if not probe.available:
        return None, probe.reason
    reason = probe.reason
    for device in dict.fromkeys((device_under_test, "cpu")):
        try:
            backends.choose_backend(name, torch.device(device))  # looked up here: a dry run replaces it
        except RuntimeError as error:
            reason = str(error)
            continue
        return device, probe.reason
    return None, reason


def allow_kernels_on_cpu() -> None:
    """Dry run only: let an explicitly requested kernel backend run on CPU tensors, as Triton's interpreter
    (``TRITON_INTERPRET=1``) can, so that SS2D and the networks take their GPU code path on the CPU.
    ``auto`` keeps the project's real choice for the CPU."""
    project_choice = backends.choose_backend

    def choose(requested: str, device: torch.device) -> tuple[str, str]:
        try:
            return project_choice(requested, device)
        except RuntimeError:
            if requested == "auto" or torch.device(device).type != "cpu" or not availability(requested).available:
                raise
            return requested, "dry run: kernel backend on CPU tensors (TRITON_INTERPRET=1)"
    backends.choose_backend = choose

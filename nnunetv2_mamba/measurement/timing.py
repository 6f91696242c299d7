"""Wall-clock or CUDA-event time of repeated calls (what the numbers mean: nnunetv2_mamba/measurement)."""
from __future__ import annotations

import math
import time
from typing import Callable

import torch


def timed_runs(run: Callable[[], object], device: str | torch.device, warmup: int = 1, repeats: int = 3,
               max_seconds: float = math.inf) -> tuple[list[float], object]:
    """(seconds of each timed call of ``run``, the last call's result).

    ``warmup`` untimed calls first (fewer if they already took ``max_seconds``), then ``repeats`` timed ones, cut
    short once they took ``max_seconds`` (at least one runs). CUDA: each call between two CUDA events, so the time
    is the device's for the work the call queued; otherwise ``time.perf_counter`` around the call.
    """
    result, started = None, time.perf_counter()
    for _ in range(warmup):
        result = run()
        if time.perf_counter() - started > max_seconds:
            break
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    times, started = [], time.perf_counter()
    for _ in range(max(1, repeats)):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            result = run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            begin = time.perf_counter()
            result = run()
            times.append(time.perf_counter() - begin)
        if time.perf_counter() - started > max_seconds:
            break
    return times, result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

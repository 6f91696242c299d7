"""Peak memory of a block of code (what the numbers mean: the package docstring, nnunetv2_mamba/measurement)."""
from __future__ import annotations

import os
import resource
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

MIB = 2 ** 20


@dataclass
class PeakMemory:
    """MiB in use when the block began (``base_mib``) and at most during it (``peak_mib``); set when it ends."""
    device: str
    base_mib: float = 0.0
    peak_mib: float = 0.0

    @property
    def extra_mib(self) -> float:
        """The block's peak beyond what was in use when it began."""
        return self.peak_mib - self.base_mib


def resident_mib() -> float:
    """This process's resident set size now (Linux /proc; elsewhere its peak so far)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except OSError:
        return peak_resident_mib()


def peak_resident_mib() -> float:
    """The largest resident set size this process has had (ru_maxrss, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def peak_memory(device: str | torch.device) -> Iterator[PeakMemory]:
    """Measure the block's memory on ``device``: CUDA's allocator on a CUDA device, the process's RSS otherwise."""
    measured = PeakMemory(str(device))
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        measured.base_mib = torch.cuda.memory_allocated(device) / MIB
        yield measured
        torch.cuda.synchronize(device)
        measured.peak_mib = torch.cuda.max_memory_allocated(device) / MIB
    else:
        measured.base_mib = resident_mib()
        yield measured
        measured.peak_mib = peak_resident_mib()

"""Helpers every benchmark script shares: machine description, median timing, peak memory, fresh subprocesses.

Each measurement should run in its own process (``run_measurement``) so that its peak memory is its own:
on CPU the growth of the peak resident set size over the process's size before the measurement, on CUDA
``torch.cuda.max_memory_allocated`` over the memory allocated before it.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what ``platform`` knows."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
        if names:
            return names[0]
    return platform.processor() or platform.machine()


def load_average() -> str:
    """"load average 1.2 0.9 0.7" (1, 5, 15 minutes), or "" where the OS has none."""
    return "load average %.1f %.1f %.1f" % os.getloadavg() if hasattr(os, "getloadavg") else ""


def machine_description(device: str) -> str:
    """One line: torch version, device (GPU name on CUDA), threads, cores, CPU model, OpenMP's wait policy,
    current load."""
    gpu = f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else ""
    return (f"torch {torch.__version__}, device {device}{gpu}, {torch.get_num_threads()} threads on "
            f"{os.cpu_count()} cores ({cpu_model()}), OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, "
            f"{load_average()}")


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op off CUDA)."""
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def median_seconds(run: Callable[[], object], repeats: int, warmup: int, device: str) -> tuple[float, list[float]]:
    """(median, all timings) of ``run()`` in seconds over ``repeats`` calls after ``warmup`` untimed ones."""
    sync = synchronizer(device)
    for _ in range(warmup):
        run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _resident_mb() -> float:
    """This process's current resident set size (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def peak_memory_mb(device: str):
    """Yields a dict whose ``"peak_mb"`` is, on exit, the peak extra memory of the block in MiB.

    CPU: peak RSS of the process minus its RSS on entry (meaningful in a fresh process whose earlier peak was not
    higher). CUDA: ``max_memory_allocated`` minus ``memory_allocated`` on entry.
    """
    result = {}
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        yield result
        torch.cuda.synchronize()
        result["peak_mb"] = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    else:
        base = _resident_mb()
        yield result
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """Run ``count`` Python processes spinning in a loop (one core each) while the block runs, then kill them:
    the load of other jobs sharing the CPU, to compare timings on an idle and on a loaded machine. A spinner also
    stops once this process is gone (killed before it could clean up)."""
    spin = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def run_measurement(script: str, arguments: Sequence[str]) -> dict | None:
    """Run ``python script *arguments`` in a fresh process; its last stdout line is a JSON dict, returned.

    On failure prints the child's last error line to stderr and returns None.
    """
    result = subprocess.run([sys.executable, script, *arguments], capture_output=True, text=True)
    if result.returncode:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"[measurement {' '.join(arguments)} failed: {last}]", file=sys.stderr)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)

"""Build and load the C selective-scan kernel (``scan_cpu.c``) for the ``cpu`` backend.

At first use the system C compiler ($CC, else gcc, else cc) compiles the kernel with OpenMP for this CPU
(``-march=native``) into ``$XDG_CACHE_HOME/nnunetv2_mamba/cpu_scan/<key>/`` (default ``~/.cache/...``), where the key
hashes the sources, the compiler's identity, the flags and the CPU model and features; later processes load the
cached library (about 1 s of compiling once, then nothing). The library is loaded with ctypes and needs no torch
headers. It links ``libgomp.so.1``, which resolves to the OpenMP runtime torch has already loaded: one thread pool.
Any failure (no compiler, a compile error, no write access to the cache) raises :class:`KernelUnavailable` with
the reason, so that the backend is reported unavailable instead of failing an import.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch  # noqa: F401  (loads torch's OpenMP runtime before the kernel's, so that the kernel shares it)

SOURCES = ("scan_cpu.c", "scan_cpu_kernel.h")
# No -ffast-math: it would flush denormals process-wide when the library loads (see scan_cpu.c), and no
# reassociation (it would undo exp's rounding trick); the kernel's "omp simd" loops vectorise without it.
FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math")
LIBRARY = "scan_cpu.so"


class KernelUnavailable(RuntimeError):
    """The kernel cannot be built or loaded here; the message says why."""


class ScanShape(ctypes.Structure):
    """Mirror of ``ScanShape`` in scan_cpu.c (all int64)."""
    _fields_ = [(name, ctypes.c_int64) for name in (
        "batch", "channels", "length", "d_state", "groups", "segment", "slabs", "threads", "delta_softplus",
        "u_b", "u_l", "delta_b", "delta_l", "z_b", "z_l", "grad_b", "grad_l", "B_b", "B_g", "B_l", "C_b", "C_g",
        "C_l")]


def find_compiler() -> str:
    """Path of $CC, else gcc, else cc; raises KernelUnavailable if none is found."""
    names = [os.environ["CC"]] if os.environ.get("CC") else ["gcc", "cc"]
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise KernelUnavailable(f"no C compiler found (looked for {', '.join(names)}; set CC or install gcc)")


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nnunetv2_mamba" / "cpu_scan"


def _cpu_identity() -> str:
    """The CPU's model and feature flags (Linux), else what ``platform`` knows: a kernel built with
    -march=native must not be loaded on another CPU sharing the same home directory."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    wanted = [line for line in lines if line.split(":")[0].strip() in ("model name", "flags", "Features")]
    return "\n".join(sorted(set(wanted))) or platform.processor()


def build_key(compiler: str) -> str:
    """Hash of everything the library depends on: sources, compiler identity, flags, machine, CPU."""
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise KernelUnavailable(f"the C compiler {compiler} does not run ({error!r})") from error
    digest = hashlib.sha256()
    for part in [*(source_path(name).read_bytes() for name in SOURCES), compiler.encode(), version.encode(),
                 " ".join(FLAGS).encode(), platform.machine().encode(), _cpu_identity().encode()]:
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def source_path(name: str) -> Path:
    return Path(__file__).with_name(name)


def compile_library(compiler: str, target: Path) -> None:
    """Compile the kernel into ``target``, atomically (a concurrent process never sees half a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        partial = Path(scratch) / LIBRARY
        command = [compiler, *FLAGS, str(source_path(SOURCES[0])), "-o", str(partial), "-lm"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as error:
            raise KernelUnavailable(f"compiling the kernel failed to run ({error!r})") from error
        if result.returncode:
            tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
            raise KernelUnavailable(f"{Path(compiler).name} could not compile the kernel: {tail}")
        os.replace(partial, target)


def _declare(library: ctypes.CDLL) -> None:
    pointer, shape = ctypes.c_void_p, ctypes.POINTER(ScanShape)
    for suffix in ("f32", "f64"):
        forward, backward = getattr(library, f"scan_forward_{suffix}"), getattr(library, f"scan_backward_{suffix}")
        forward.argtypes, forward.restype = [shape] + [pointer] * 11, ctypes.c_int
        backward.argtypes, backward.restype = [shape] + [pointer] * 18, ctypes.c_int


@functools.cache
def load() -> ctypes.CDLL:
    """The compiled kernel library (built on first call, then cached on disk); raises KernelUnavailable."""
    compiler = find_compiler()
    target = cache_root() / build_key(compiler) / LIBRARY
    try:
        if not target.exists():
            compile_library(compiler, target)
        library = ctypes.CDLL(str(target))
    except OSError as error:
        raise KernelUnavailable(f"the kernel could not be built or loaded at {target} ({error})") from error
    _declare(library)
    return library

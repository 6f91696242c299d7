"""Which selective-scan implementation runs, and why: the scan backend's policy, decided once per device.

Backends: ``cuda`` (mamba-ssm's compiled ``selective_scan_fn``), ``triton`` (our Triton kernel,
:mod:`nnunetv2_mamba.ops.scan_triton`), ``cpu`` (our C kernel compiled at first use, :mod:`.scan_cpu`),
``torch`` (our pure-PyTorch scan, any device). ``auto`` picks, for CUDA tensors, cuda if its kernel imports, else
triton, else torch; for CPU tensors, cpu if it compiles, else torch; torch on any other device. It skips (with a
warning) a kernel whose first small test scan on that device fails or disagrees with the reference loop. The
choice comes from the ``backend=`` argument, else the environment variable ``nnUNet_mamba_scan``, else
``auto``. The optional imports and the compilation happen on first need only, and any exception they raise just
marks that backend unavailable. :func:`scan_backend` makes the choice once per device (and request) and returns it
as a :class:`ScanBackend`: the scan, the sequence layout it wants, and whether the cross scans run as the fused
Triton kernels (:func:`fused_cross_scans`, behind their smoke test :mod:`.cross_scan_smoke_test`); the mixers keep
that value and carry it into the scan (:func:`~.dispatch.scan_on`) and the cross scans (:meth:`ScanBackend.crossing`).
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
from dataclasses import dataclass
from typing import Callable

import torch

from nnunetv2_mamba.ops.scan_directions import ScanDirections
from nnunetv2_mamba.ops.scan_smoke_test import scan_failure

ENV_VARIABLE = "nnUNet_mamba_scan"
BACKENDS = ("cuda", "triton", "cpu", "torch")
CHOICES = ("auto",) + BACKENDS
#: auto's order of preference per device type (any other device: torch)
AUTO_ORDER = {"cuda": ("cuda", "triton", "torch"), "cpu": ("cpu", "torch")}
#: the device type a kernel backend runs on (torch runs on any)
KERNEL_DEVICE = {"cuda": "cuda", "triton": "cuda", "cpu": "cpu"}
#: the sequence layout each backend's scan is fastest on, see :class:`ScanBackend`
LAYOUTS = {"cuda": "channels_first", "triton": "channels_first", "cpu": "channels_last", "torch": "channels_last"}
CUDA_BUILD_HINT = ("build mamba-ssm's kernel on a machine with nvcc: "
                   "MAMBA_FORCE_BUILD=TRUE pip install mamba-ssm --no-build-isolation")

logger = logging.getLogger("nnunetv2_mamba")


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here at all (before looking at the tensors' device), and why."""
    available: bool
    reason: str
    function: Callable | None = None


def _probe_cuda() -> Availability:
    try:
        kernel = importlib.import_module("selective_scan_cuda")
    except Exception as error:  # missing or broken: both mean "not usable"
        return Availability(False, f"mamba-ssm's selective_scan_cuda kernel does not import ({error!r}); "
                                   + CUDA_BUILD_HINT)
    if not hasattr(kernel, "fwd"):
        return Availability(False, "selective_scan_cuda imports but has no fwd() (a stub, not a built kernel); "
                                   + CUDA_BUILD_HINT)
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as error:
        return Availability(False, f"mamba_ssm does not import ({error!r}); reinstall mamba-ssm")
    return Availability(True, "mamba-ssm's compiled selective_scan_cuda kernel (CUDA tensors only)",
                        selective_scan_fn)


def _probe_triton() -> Availability:
    try:
        import triton  # noqa: F401
    except Exception as error:
        return Availability(False, f"triton does not import ({error!r}); pip install triton")
    try:
        from nnunetv2_mamba.ops.scan_triton import selective_scan_triton
    except Exception as error:
        return Availability(False, f"nnunetv2_mamba.ops.scan_triton does not import ({error!r})")
    return Availability(True, f"triton {triton.__version__} kernel nnunetv2_mamba.ops.scan_triton (CUDA tensors only)",
                        selective_scan_triton)


def _probe_cpu() -> Availability:
    from nnunetv2_mamba.ops import cpu_kernel
    from nnunetv2_mamba.ops.scan_cpu import selective_scan_cpu
    try:
        cpu_kernel.load()
    except cpu_kernel.KernelUnavailable as error:
        return Availability(False, f"{error}; auto uses the torch scan on CPU tensors")
    return Availability(True, f"C kernel nnunetv2_mamba.ops.scan_cpu compiled by {cpu_kernel.find_compiler()} with "
                              f"OpenMP (CPU tensors only)", selective_scan_cpu)


def _probe_torch() -> Availability:
    from nnunetv2_mamba.ops.scan_torch import selective_scan_torch
    return Availability(True, f"pure PyTorch {torch.__version__} chunked scan (any device)", selective_scan_torch)


_PROBES = {"cuda": _probe_cuda, "triton": _probe_triton, "cpu": _probe_cpu, "torch": _probe_torch}


@functools.cache
def availability(name: str) -> Availability:
    """Probe backend ``name`` once per process."""
    return _PROBES[name]()


def requested_backend(backend: str | None = None) -> str:
    """The requested choice: the argument, else $nnUNet_mamba_scan, else "auto"; validated."""
    source = "backend="
    if backend is None:
        backend, source = os.environ.get(ENV_VARIABLE, "") or "auto", ENV_VARIABLE + "="
    choice = backend.strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"unknown selective-scan backend {source}{backend!r}; valid values are "
                         f"{', '.join(CHOICES)}")
    return choice


def choose_backend(requested: str, device: torch.device) -> tuple[str, str]:
    """(backend name, reason) to run on tensors of ``device``; raises RuntimeError if ``requested`` cannot run."""
    device = torch.device(device)
    if requested == "auto":
        for name in AUTO_ORDER.get(device.type, ("torch",)):
            probe = availability(name)
            if not probe.available:
                continue
            failure = None if name == "torch" else smoke_test_failure(name, str(device))
            if failure is None:
                return name, f"auto on {device.type}: {probe.reason}"
            logger.warning("selective scan backend %r imports but is skipped on %s: %s", name, device, failure)
        raise AssertionError("the torch backend is always available")
    probe = availability(requested)
    if not probe.available:
        raise RuntimeError(f"selective-scan backend {requested!r} is unavailable: {probe.reason}. "
                           f"Or use backend='torch' / {ENV_VARIABLE}=torch (or auto).")
    needed = KERNEL_DEVICE.get(requested)
    if needed is not None and device.type != needed:
        raise RuntimeError(f"selective-scan backend {requested!r} needs {needed.upper()} tensors, got {device.type} "
                           f"tensors; use backend='torch' or {ENV_VARIABLE}=auto on this device.")
    return requested, f"requested: {probe.reason}"


@functools.cache
def smoke_test_failure(name: str, device: str) -> str | None:
    """None if backend ``name`` runs a test scan on ``device``, forward and backward, at the networks' state size
    and the kernels' real block sizes, and matches the reference loop (:mod:`.scan_smoke_test`); else what went
    wrong.
    For triton the fused cross scans (2D and 3D) must also equal their torch definitions, as they decide
    :func:`fused_cross_scans`.

    Run once per backend and device before auto picks a kernel backend (and before the cross scans use Triton): a
    kernel that imports can still fail to compile for this GPU (e.g. Triton on an unsupported architecture) or be
    miscompiled, and auto should then fall back. Runs in fp32 with autograd on, whatever the caller's grad mode,
    inference mode or autocast.
    """
    try:
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast("cpu", enabled=False), \
                torch.autocast(torch.device(device).type, enabled=False):
            failure = scan_failure(availability(name).function, device)
            if failure is None and name == "triton":
                from nnunetv2_mamba.ops.cross_scan_smoke_test import fused_cross_scan_failure
                failure = fused_cross_scan_failure(device)
    except Exception as error:  # any failure to compile or launch means: do not pick this backend
        return f"a test scan raised {error!r}"
    return failure


@functools.cache
def _log_choice(name: str, reason: str) -> None:
    logger.info("selective scan backend %r (%s)", name, reason)


@dataclass(frozen=True)
class ScanBackend:
    """One backend as chosen for one ``device``: its name (what the registered scan operator carries), its function
    ``scan`` (``selective_scan``'s signature without ``backend`` and the shape checks), the sequence layout it is
    fastest on and whether the channels-first cross scans run as the fused Triton kernels (``fused_cross_scans``),
    which together pick the cross scan / merge of a mixer's directions (:meth:`crossing`).

    ``layout`` "channels_first": (B, K*D, L) sequences of (B, K, D, L) memory, scanned from (B, C, *S) grids
    (time innermost, what the compiled GPU kernels read); "channels_last": (B, K*D, L) views of (B, L, K, D) memory,
    scanned from (B, *S, C) grids (channels innermost: whole rows of channels per copy, what the CPU scans read).
    """
    name: str
    reason: str
    scan: Callable
    layout: str
    device: torch.device
    fused_cross_scans: bool

    def crossing(self, directions: ScanDirections) -> tuple[Callable, Callable]:
        """(cross scan, cross merge) of ``directions`` (an image's four, a volume's K) in this backend's layout,
        with the shapes of :mod:`~.scan_directions`: merge(ys, S) takes the grid shape S. Channels first: the fused
        Triton pair where chosen, except while torch.compile traces (its own kernels fuse the permutations), else
        the torch definitions."""
        if self.layout == "channels_last":
            return directions.scan_channels_last, directions.merge_channels_last
        if self.fused_cross_scans and not compiling():
            fused = directions.fused_channels_first()
            return fused.scan, fused.merge
        return directions.scan_channels_first, directions.merge_channels_first


def compiling() -> bool:
    """True while torch.compile traces (``torch.compiler.is_compiling``, torch >= 2.3; older torch: False)."""
    is_compiling = getattr(torch.compiler, "is_compiling", None)
    return bool(is_compiling is not None and is_compiling())


def _constant_under_compile(function: Callable) -> Callable:
    """Mark ``function`` as ``torch.compiler.assume_constant_result`` does (that call itself would import
    torch._dynamo, and with it triton, when this module is imported): torch.compile then calls it eagerly while it
    traces and bakes its result into the graph, instead of tracing into it."""
    function._dynamo_marked_constant = True
    return function


_CHOSEN: dict[str, ScanBackend] = {}


@_constant_under_compile
def _choice_key(device: torch.device, backend: str | None) -> str:
    """The key of the choice for ``device`` and ``backend`` in ``_CHOSEN``, making (and logging) it on first need:
    eagerly, also when torch.compile meets it first, so that the probes, smoke tests and log line stay out of the
    traced graph."""
    requested = requested_backend(backend)
    key = f"{requested} on {device}"
    if key not in _CHOSEN:
        name, reason = choose_backend(requested, device)
        _CHOSEN[key] = ScanBackend(name, reason, availability(name).function, LAYOUTS[name], device,
                                   fused_cross_scans(name, device))
        _log_choice(name, reason)
    return key


def scan_backend(device: torch.device, backend: str | None = None) -> ScanBackend:
    """The backend for tensors of ``device``: ``backend``, else $nnUNet_mamba_scan, else auto (chosen once per
    device and request, logged once; under torch.compile decided when the graph is traced); raises as
    :func:`choose_backend` does."""
    return _CHOSEN[_choice_key(torch.device(device), backend)]


def fused_cross_scans(name: str, device: torch.device) -> bool:
    """Whether backend ``name`` on ``device`` runs its channels-first cross scans / merges as the fused Triton
    kernels: for the GPU kernel backends (cuda, triton) on CUDA, where triton imports and its smoke test (scan and
    cross scans) passed on that device; otherwise they run as torch permutations, and a failed smoke test is logged
    once."""
    if name not in ("cuda", "triton") or device.type != "cuda" or not availability("triton").available:
        return False
    failure = smoke_test_failure("triton", str(device))
    if failure is not None:
        _log_cross_scan_fallback(str(device), failure)
    return failure is None


@functools.cache
def _log_cross_scan_fallback(device: str, failure: str) -> None:
    logger.warning("the fused Triton cross scans are not used on %s (their smoke test failed: %s); the cross scans "
                   "run as torch permutations", device, failure)

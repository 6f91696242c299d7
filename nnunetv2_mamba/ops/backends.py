"""Which selective-scan implementation runs, and why.

Backends: ``cuda`` (mamba-ssm's compiled ``selective_scan_fn``), ``triton`` (our Triton kernel,
:mod:`nnunetv2_mamba.ops.scan_triton`), ``torch`` (our pure-PyTorch scan, any device). ``auto`` picks, for CUDA
tensors, cuda if its kernel imports, else triton, else torch; for any other device, torch. The choice comes from
the ``backend=`` argument, else the environment variable ``NNUNETV2_MAMBA_SCAN``, else ``auto``. The optional
imports happen on first need only, and any exception they raise just marks that backend unavailable.
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
from dataclasses import dataclass
from typing import Callable

import torch

ENV_VARIABLE = "NNUNETV2_MAMBA_SCAN"
BACKENDS = ("cuda", "triton", "torch")
CHOICES = ("auto",) + BACKENDS
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


def _probe_torch() -> Availability:
    from nnunetv2_mamba.ops.scan_torch import selective_scan_torch
    return Availability(True, f"pure PyTorch {torch.__version__} chunked scan (any device)", selective_scan_torch)


_PROBES = {"cuda": _probe_cuda, "triton": _probe_triton, "torch": _probe_torch}


@functools.cache
def availability(name: str) -> Availability:
    """Probe backend ``name`` once per process."""
    return _PROBES[name]()


def requested_backend(backend: str | None = None) -> str:
    """The requested choice: the argument, else $NNUNETV2_MAMBA_SCAN, else "auto"; validated."""
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
        if device.type != "cuda":
            return "torch", f"tensors on {device.type}: only the torch backend runs off CUDA"
        for name in BACKENDS:
            probe = availability(name)
            if probe.available:
                return name, f"auto on CUDA: {probe.reason}"
        raise AssertionError("the torch backend is always available")
    probe = availability(requested)
    if not probe.available:
        raise RuntimeError(f"selective-scan backend {requested!r} is unavailable: {probe.reason}. "
                           f"Or use backend='torch' / {ENV_VARIABLE}=torch (or auto).")
    if requested != "torch" and device.type != "cuda":
        raise RuntimeError(f"selective-scan backend {requested!r} needs CUDA tensors, got {device.type} tensors; "
                           f"use backend='torch' or {ENV_VARIABLE}=auto on this device.")
    return requested, f"requested: {probe.reason}"


@functools.cache
def _log_choice(name: str, reason: str) -> None:
    logger.info("selective scan backend %r (%s)", name, reason)


def backend_for(device: torch.device) -> str:
    """The backend name :func:`selective_scan` will run on tensors of ``device`` ($NNUNETV2_MAMBA_SCAN or auto)."""
    return choose_backend(requested_backend(), device)[0]


def scan_function(backend: str | None, device: torch.device) -> Callable:
    """The selective_scan implementation to use for ``backend`` (or the environment / auto) on ``device``."""
    name, reason = choose_backend(requested_backend(backend), device)
    _log_choice(name, reason)
    return availability(name).function

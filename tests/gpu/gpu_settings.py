"""What the GPU checks measure: device, shapes, dtypes, repetitions, one preset per mode, and on which device each
scan backend runs.

``benchmarks/gpu_check.py`` chooses the mode through ``$NNUNETV2_MAMBA_GPU_CHECK`` (JSON: dry_run, quick, patch,
batch); without it (``pytest -m gpu``) the full preset runs on CUDA, each measurement once (correctness only; the
timings are gpu_check.py's). A dry run runs everything on the CPU with tiny shapes and Triton interpreted.

The scan, cross-scan and SS2D checks use the SS2D shapes of the 2d networks at ``patch``: encoder stage s has
C = dims[s] channels on a (H / 4·2^s) x (W / 4·2^s) grid, and its scan runs over d = 4·2C channels (four
directions of d_inner = 2C) and L = H·W / 16·4^s positions.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch

from nnunetv2_mamba.ops import backends

MODE_VARIABLE = "NNUNETV2_MAMBA_GPU_CHECK"
ALL_DTYPES = ("float32", "bfloat16", "float16")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PAPER_DIMS = (96, 192, 384, 768)
DIRECTIONS = 4


@dataclass(frozen=True)
class Settings:
    device: str  # the device under test: "cuda", or "cpu" in a dry run
    dry_run: bool
    quick: bool
    patch: tuple[int, ...]  # training patch: (H, W) in 2d, (D, H, W) in 3d
    batch: int  # training batch
    patch_3d: tuple[int, int, int] = (64, 64, 64)  # of the 3D network check (every edge a multiple of 32)
    batch_3d: int = 2
    dims: tuple[int, ...] = PAPER_DIMS  # Mamba networks' stage widths C
    scan_stages: tuple[int, ...] = (0, 1, 2, 3)  # encoder stages whose SS2D shapes the scan checks use
    scan_batch: int = 2
    d_state: int = 16
    dtypes: tuple[str, ...] = ALL_DTYPES  # of the torch scan and of kernels on the device under test
    kernel_dtypes: tuple[str, ...] = ALL_DTYPES  # of the kernel backends (Triton, CUDA, ...)
    warmup: int = 3
    repeats: int = 10
    max_measure_seconds: float = 5.0  # timed repetitions of one case stop after this long (at least one runs)
    network_kwargs: dict = field(default_factory=dict)  # per Mamba network; {} = the paper configuration
    plain_base_features: int = 32  # nnU-Net's 2d PlainConvUNet: 32 features doubling up to 512
    input_channels: int = 1
    num_classes: int = 4
    extra_backend_networks: tuple[str, ...] = ("MambaUNet",)  # also trained with every other scan backend

    def in_3d(self) -> "Settings":
        """The same run for the 3D networks: ``patch_3d`` and ``batch_3d``, 3D Mamba networks, nnU-Net's 3d
        PlainConvUNet (its features stop at 320)."""
        return replace(self, patch=self.patch_3d, batch=self.batch_3d, network_kwargs={
            name: {**self.network_kwargs.get(name, {}), "spatial_dims": 3} for name in ("MambaUNet", "VMUNet")})

    def stage_shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) of the SS2D input at each of ``scan_stages``."""
        return [(self.dims[s], self.patch[0] // (4 * 2 ** s), self.patch[1] // (4 * 2 ** s))
                for s in self.scan_stages]


def settings_for(*, dry_run: bool, quick: bool, patch: tuple[int, int], batch: int) -> Settings:
    """The preset of a full run (on CUDA), a ``quick`` one (stages 0 and 3, fewer repetitions, auto backend only
    in training), or a ``dry_run`` on the CPU (tiny networks and shapes; the interpreted Triton kernels, about
    10 s per call on a busy 2-core machine, run in fp32 at one small shape)."""
    if dry_run:
        tiny = dict(dims=(4, 8, 16, 32), depths=(1, 1, 1, 1), d_state=4)
        return Settings(device="cpu", dry_run=True, quick=quick, patch=(32, 32), batch=2, patch_3d=(32, 32, 32),
                        batch_3d=1, dims=tiny["dims"],
                        scan_stages=(1,), scan_batch=1, d_state=4, kernel_dtypes=("float32",), warmup=0, repeats=1,
                        network_kwargs={"MambaUNet": dict(tiny, decoder_depths=(1, 1, 1)),
                                        "VMUNet": dict(tiny, decoder_depths=(1, 1, 1, 1))},
                        plain_base_features=4, extra_backend_networks=())
    if quick:
        return Settings(device="cuda", dry_run=False, quick=True, patch=patch, batch=batch, scan_stages=(0, 3),
                        warmup=2, repeats=5, extra_backend_networks=())
    return Settings(device="cuda", dry_run=False, quick=False, patch=patch, batch=batch)


def current_settings() -> Settings:
    """The preset ``$NNUNETV2_MAMBA_GPU_CHECK`` asks for; without it the full preset, each measurement once."""
    mode = json.loads(os.environ.get(MODE_VARIABLE) or "{}")
    if not mode:
        return replace(settings_for(dry_run=False, quick=False, patch=(224, 192), batch=12), warmup=0, repeats=1)
    return settings_for(dry_run=mode["dry_run"], quick=mode["quick"], patch=tuple(mode["patch"]),
                        batch=mode["batch"])


@contextmanager
def scan_backend(name: str):
    """Run the block with ``$nnUNet_mamba_scan=name`` (what SS2D and the cross scan read), then restore it."""
    previous = os.environ.get(backends.ENV_VARIABLE)
    os.environ[backends.ENV_VARIABLE] = name
    try:
        yield
    finally:
        if previous is None:
            del os.environ[backends.ENV_VARIABLE]
        else:
            os.environ[backends.ENV_VARIABLE] = previous


def backend_device(name: str, device_under_test: str) -> tuple[str | None, str]:
    """(device backend ``name`` runs on: the device under test, else the CPU, else None; why / what it is)."""
    probe = backends.availability(name)
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
            if requested == "auto" or torch.device(device).type != "cpu" or not backends.availability(
                    requested).available:
                raise
            return requested, "dry run: kernel backend on CPU tensors (TRITON_INTERPRET=1)"
    backends.choose_backend = choose

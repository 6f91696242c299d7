"""What one gpu_check run measures: device, shapes, dtypes, repetitions; one preset per mode (full, quick, dry run).

The scan, cross-scan and SS2D checks use the SS2D shapes of the 2d networks at ``patch``: encoder stage s has
C = dims[s] channels on a (H / 4·2^s) x (W / 4·2^s) grid, and its scan runs over d = 4·2C channels (four
directions of d_inner = 2C) and L = H·W / 16·4^s positions.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

ALL_DTYPES = ("float32", "bfloat16", "float16")
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
    inject_failure: tuple[str, ...] = ()  # tests only: cases whose "check: case" contains one of these fail
    inject_crash: tuple[str, ...] = ()  # tests only: these checks' processes die after their first row

    def in_3d(self) -> "Settings":
        """The same run for the 3D networks: ``patch_3d`` and ``batch_3d``, 3D Mamba networks, nnU-Net's 3d
        PlainConvUNet (its features stop at 320)."""
        return replace(self, patch=self.patch_3d, batch=self.batch_3d, network_kwargs={
            name: {**self.network_kwargs.get(name, {}), "spatial_dims": 3} for name in ("MambaUNet", "VMUNet")})

    def stage_shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) of the SS2D input at each of ``scan_stages``."""
        return [(self.dims[s], self.patch[0] // (4 * 2 ** s), self.patch[1] // (4 * 2 ** s))
                for s in self.scan_stages]


def settings_for(*, dry_run: bool, quick: bool, patch: tuple[int, int], batch: int,
                 inject_failure=(), inject_crash=()) -> Settings:
    """The preset of a full run (on CUDA), a ``quick`` one (stages 0 and 3, fewer repetitions, auto backend only
    in training), or a ``dry_run`` on the CPU (tiny networks and shapes; the interpreted Triton kernels, about
    10 s per call on a busy 2-core machine, run in fp32 at one small shape)."""
    injected = dict(inject_failure=tuple(inject_failure), inject_crash=tuple(inject_crash))
    if dry_run:
        tiny = dict(dims=(4, 8, 16, 32), depths=(1, 1, 1, 1), d_state=4)
        return Settings(device="cpu", dry_run=True, quick=quick, patch=(32, 32), batch=2, patch_3d=(32, 32, 32),
                        batch_3d=1, dims=tiny["dims"],
                        scan_stages=(1,), scan_batch=1, d_state=4, kernel_dtypes=("float32",), warmup=0, repeats=1,
                        network_kwargs={"MambaUNet": dict(tiny, decoder_depths=(1, 1, 1)),
                                        "VMUNet": dict(tiny, decoder_depths=(1, 1, 1, 1))},
                        plain_base_features=4, extra_backend_networks=(), **injected)
    if quick:
        return Settings(device="cuda", dry_run=False, quick=True, patch=patch, batch=batch, scan_stages=(0, 3),
                        warmup=2, repeats=5, extra_backend_networks=(), **injected)
    return Settings(device="cuda", dry_run=False, quick=False, patch=patch, batch=batch, **injected)

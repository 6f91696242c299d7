"""VMamba v0's 2D selective-scan mixer (SS2D) and the VSS block built on it (docs/architecture.md, "SS2D").

Parameter names match VMamba v0 checkpoints: ``in_proj``, ``conv2d``, ``x_proj_weight``, ``dt_projs_weight``,
``dt_projs_bias``, ``A_logs``, ``Ds``, ``out_norm``, ``out_proj``; a block holds ``ln_1`` and ``self_attention``.
The mixer itself works on any grid whose scan directions it is given (``SelectiveScanMixer``): SS2D gives an
image's four, SS3D (nets/ss3d.py) a volume's K (docs/three_d.md).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from nnunetv2_mamba.nets.scan_variants import CROSS_SCAN, NO_SCAN, ONE_WAY, check_scan, one_way_directions
from nnunetv2_mamba.ops import IMAGE_DIRECTIONS, ScanBackend, ScanDirections, scan_backend, selective_scan

CONVOLUTIONS = {2: nn.Conv2d, 3: nn.Conv3d}


def dt_rank_for(d_model: int) -> int:
    """VMamba's ``dt_rank="auto"``: ceil(d_model / 16)."""
    return math.ceil(d_model / 16)


def _scan_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` in fp32, or as it is in fp64 (gradient checks): the scan never runs in half precision."""
    return t if t.dtype == torch.float64 else t.float()


def _channels_view(t: torch.Tensor) -> torch.Tensor:
    """(B, L, K, D) -> fp32 (B, K*D, L), a view of channels-last memory."""
    return _scan_precision(t).flatten(2).transpose(1, 2)


def _groups_view(t: torch.Tensor) -> torch.Tensor:
    """(B, L, K, N) -> fp32 (B, K, N, L), a view of contiguous channels-last memory."""
    return _scan_precision(t).contiguous().permute(0, 2, 3, 1)


class SelectiveScanMixer(nn.Module):
    """K-direction selective scan over a grid: (B, *S, C) -> (B, *S, C), channel-last.

    ``directions`` gives the grid's dimension n, which names the depthwise convolution ``conv{n}d``, the number of
    directions K, and the cross scan / merge in both sequence layouts. ``scan`` (nets/scan_variants.py) replaces
    them for the scan controls: ``"one_way"`` scans direction 0 only (K = 1), ``"none"`` makes :meth:`scan` the
    identity and the mixer has no scan parameters.
    """

    def __init__(self, d_model: int, directions: ScanDirections, d_state: int = 16, expand: int = 2,
                 d_conv: int = 3, dt_min: float = 1e-3, dt_max: float = 1e-1, dt_init_floor: float = 1e-4,
                 scan: str = CROSS_SCAN):
        super().__init__()
        self.scan_kind = check_scan(scan)
        self.directions = one_way_directions(directions.spatial_dims) if scan == ONE_WAY else directions
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank_for(d_model)
        D = self.d_inner

        self.in_proj = nn.Linear(d_model, 2 * D, bias=False)
        self.add_module(f"conv{directions.spatial_dims}d", CONVOLUTIONS[directions.spatial_dims](
            D, D, d_conv, padding=(d_conv - 1) // 2, groups=D, bias=True))
        if scan != NO_SCAN:
            self._add_ssm_parameters(self.directions.num_directions)
        self.out_norm = nn.LayerNorm(D)
        self.out_proj = nn.Linear(D, d_model, bias=False)
        if scan != NO_SCAN:
            self._init_ssm_parameters(dt_min, dt_max, dt_init_floor)

    def _add_ssm_parameters(self, K: int) -> None:
        """The scan's own parameters, one slice per direction: ``x_proj_weight`` (K, R+2N, D), ``dt_projs_weight``
        (K, D, R), ``dt_projs_bias`` (K, D), ``A_logs`` (K*D, N), ``Ds`` (K*D); uninitialised."""
        D, N, R = self.d_inner, self.d_state, self.dt_rank
        self.x_proj_weight = nn.Parameter(torch.empty(K, R + 2 * N, D))
        self.dt_projs_weight = nn.Parameter(torch.empty(K, D, R))
        self.dt_projs_bias = nn.Parameter(torch.empty(K, D))
        self.A_logs = nn.Parameter(torch.empty(K * D, N))
        self.Ds = nn.Parameter(torch.empty(K * D))

    @torch.no_grad()
    def _init_ssm_parameters(self, dt_min: float, dt_max: float, dt_init_floor: float) -> None:
        """VMamba v0 / Mamba initialisation of the SSM parameters (the projections keep their own)."""
        bound = self.d_inner ** -0.5  # nn.Linear's default init of the K stacked x_proj Linears
        self.x_proj_weight.uniform_(-bound, bound)
        self.dt_projs_weight.uniform_(-self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        log_dt = torch.rand_like(self.dt_projs_bias) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        dt = log_dt.exp().clamp(min=dt_init_floor)
        self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        s4d_real = torch.arange(1, self.d_state + 1, dtype=torch.float32)
        self.A_logs.copy_(s4d_real.log().expand_as(self.A_logs))
        self.Ds.fill_(1.0)

    @property
    def depthwise_conv(self) -> nn.Module:
        """The ``conv{n}d`` layer: (B, D, *S) -> (B, D, *S)."""
        return self._modules[f"conv{self.directions.spatial_dims}d"]

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """The K-direction selective scan core: (B, *S, D) -> (B, *S, D) in fp32 (fp64 for fp64 inputs).

        The backend for x's device (:func:`~nnunetv2_mamba.ops.scan_backend`, chosen once per device) gives the
        scan, the sequence layout it is fastest on, and this mixer's cross scan / merge in that layout
        (``ScanBackend.crossing(self.directions)``): channels-first (B, K, D, L) sequences for the compiled GPU
        kernels, which want time innermost; channels-last (B, L, K, D) ones for the CPU scans, whose reads (and the
        layout copies around them) then move whole rows of channels. Both compute the same numbers. With
        ``scan="none"`` it is the identity (x as it is).
        """
        if self.scan_kind == NO_SCAN:
            return x
        backend = scan_backend(x.device)
        if backend.layout == "channels_last":
            return self._scan_channels_last(x, backend)
        return self._scan_channels_first(x, backend)

    def _ssm_parameters(self) -> dict:
        return dict(A=-torch.exp(_scan_precision(self.A_logs)), D=_scan_precision(self.Ds),
                    delta_bias=_scan_precision(self.dt_projs_bias).reshape(-1), delta_softplus=True)

    def _scan_channels_first(self, x: torch.Tensor, backend: ScanBackend) -> torch.Tensor:
        batch, *spatial, _ = x.shape
        L = math.prod(spatial)
        cross_scan, cross_merge = backend.crossing(self.directions)
        xs = cross_scan(x.movedim(-1, 1))  # (B, K, D, L)
        x_dbl = torch.matmul(self.x_proj_weight, xs)  # (K, R+2N, D) @ (B, K, D, L) -> (B, K, R+2N, L)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.matmul(self.dt_projs_weight, dts)  # (K, D, R) @ (B, K, R, L) -> (B, K, D, L)
        ys = selective_scan(_scan_precision(xs).reshape(batch, -1, L), _scan_precision(dts).reshape(batch, -1, L),
                            B=_scan_precision(Bs).contiguous(), C=_scan_precision(Cs).contiguous(),
                            backend=backend.name, **self._ssm_parameters())
        merged = cross_merge(ys.reshape(batch, self.directions.num_directions, -1, L), spatial)
        return merged.transpose(1, 2).reshape(x.shape)

    def _scan_channels_last(self, x: torch.Tensor, backend: ScanBackend) -> torch.Tensor:
        batch, *spatial, D = x.shape
        L = math.prod(spatial)
        cross_scan, cross_merge = backend.crossing(self.directions)
        xs = cross_scan(x)  # (B, L, K, D)
        x_dbl = torch.einsum("blkd,kcd->blkc", xs, self.x_proj_weight)  # (B, L, K, R+2N)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=3)
        dts = torch.einsum("blkr,kdr->blkd", dts, self.dt_projs_weight).contiguous()  # (B, L, K, D)
        ys = selective_scan(_channels_view(xs), _channels_view(dts), B=_groups_view(Bs), C=_groups_view(Cs),
                            backend=backend.name, **self._ssm_parameters())
        return cross_merge(ys.transpose(1, 2).reshape(batch, L, self.directions.num_directions, D), spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, z = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.depthwise_conv(u.movedim(-1, 1)))  # a channels-last view: the fast depthwise-conv layout
        y = self.out_norm(self.scan(u.movedim(1, -1))).to(x.dtype)
        return self.out_proj(y * F.silu(z))


class SS2D(SelectiveScanMixer):
    """Four-direction selective scan over an image: (B, H, W, C) -> (B, H, W, C), channel-last (``scan``: one
    direction or none, nets/scan_variants.py)."""

    def __init__(self, d_model: int, d_state: int = 16, expand: int = 2, d_conv: int = 3,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, dt_init_floor: float = 1e-4, scan: str = CROSS_SCAN):
        super().__init__(d_model, IMAGE_DIRECTIONS, d_state, expand, d_conv, dt_min, dt_max, dt_init_floor, scan)


class VSSBlock(nn.Module):
    """``x + DropPath(mixer(LayerNorm(x)))``: (B, *S, C) -> (B, *S, C); the mixer is SS2D unless given
    (``mixer(dim, d_state=...)``, e.g. SS3D)."""

    def __init__(self, dim: int, drop_path: float = 0.0, d_state: int = 16, mixer: Callable[..., nn.Module] = SS2D):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = mixer(dim, d_state=d_state)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.self_attention(self.ln_1(x)))


def make_blocks(dim: int, drop_path_rates, d_state: int, mixer: Callable[..., nn.Module] = SS2D) -> nn.Sequential:
    """One VSS block per drop-path rate, all at width ``dim``: (B, *S, dim) -> (B, *S, dim)."""
    return nn.Sequential(*(VSSBlock(dim, float(rate), d_state, mixer) for rate in drop_path_rates))


def init_vssm_weights(module: nn.Module) -> None:
    """``VSSM._init_weights``: Linear -> trunc_normal(0.02), bias 0; LayerNorm -> (1, 0); convs keep defaults."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)

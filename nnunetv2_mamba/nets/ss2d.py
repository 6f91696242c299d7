"""VMamba v0's 2D selective-scan mixer (SS2D) and the VSS block built on it (docs/architecture.md, "SS2D").

Parameter names match VMamba v0 checkpoints: ``in_proj``, ``conv2d``, ``x_proj_weight``, ``dt_projs_weight``,
``dt_projs_bias``, ``A_logs``, ``Ds``, ``out_norm``, ``out_proj``; a block holds ``ln_1`` and ``self_attention``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from nnunetv2_mamba.ops import ScanBackend, scan_backend, selective_scan

NUM_DIRECTIONS = 4


def dt_rank_for(d_model: int) -> int:
    """VMamba's ``dt_rank="auto"``: ceil(d_model / 16)."""
    return math.ceil(d_model / 16)


def _channels_view(t: torch.Tensor) -> torch.Tensor:
    """(B, L, K, D) -> fp32 (B, K*D, L), a view of channels-last memory."""
    return t.float().flatten(2).transpose(1, 2)


def _groups_view(t: torch.Tensor) -> torch.Tensor:
    """(B, L, K, N) -> fp32 (B, K, N, L), a view of contiguous channels-last memory."""
    return t.float().contiguous().permute(0, 2, 3, 1)


class SS2D(nn.Module):
    """Four-direction selective scan over an image: (B, H, W, C) -> (B, H, W, C), channel-last."""

    def __init__(self, d_model: int, d_state: int = 16, expand: int = 2, d_conv: int = 3,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, dt_init_floor: float = 1e-4):
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank_for(d_model)
        K, D, N, R = NUM_DIRECTIONS, self.d_inner, d_state, self.dt_rank

        self.in_proj = nn.Linear(d_model, 2 * D, bias=False)
        self.conv2d = nn.Conv2d(D, D, d_conv, padding=(d_conv - 1) // 2, groups=D, bias=True)
        self.x_proj_weight = nn.Parameter(torch.empty(K, R + 2 * N, D))
        self.dt_projs_weight = nn.Parameter(torch.empty(K, D, R))
        self.dt_projs_bias = nn.Parameter(torch.empty(K, D))
        self.A_logs = nn.Parameter(torch.empty(K * D, N))
        self.Ds = nn.Parameter(torch.empty(K * D))
        self.out_norm = nn.LayerNorm(D)
        self.out_proj = nn.Linear(D, d_model, bias=False)
        self._init_ssm_parameters(dt_min, dt_max, dt_init_floor)

    @torch.no_grad()
    def _init_ssm_parameters(self, dt_min: float, dt_max: float, dt_init_floor: float) -> None:
        """VMamba v0 / Mamba initialisation of the SSM parameters (the projections keep their own)."""
        bound = self.d_inner ** -0.5  # nn.Linear's default init of the four stacked x_proj Linears
        self.x_proj_weight.uniform_(-bound, bound)
        self.dt_projs_weight.uniform_(-self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        log_dt = torch.rand_like(self.dt_projs_bias) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        dt = log_dt.exp().clamp(min=dt_init_floor)
        self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        s4d_real = torch.arange(1, self.d_state + 1, dtype=torch.float32)
        self.A_logs.copy_(s4d_real.log().expand_as(self.A_logs))
        self.Ds.fill_(1.0)

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """The 4-direction selective scan core: (B, H, W, D) -> (B, H, W, D) in fp32.

        The backend for x's device (:func:`~nnunetv2_mamba.ops.scan_backend`) says which sequence layout its scan
        is fastest on: channels-first (B, K, D, L) sequences for the compiled GPU kernels, which want time
        innermost; channels-last (B, L, K, D) ones for the CPU scans, whose reads (and the layout copies around
        them) then move whole rows of channels. Both compute the same numbers.
        """
        backend = scan_backend(x.device)
        if backend.layout == "channels_last":
            return self._scan_channels_last(x, backend)
        return self._scan_channels_first(x, backend)

    def _ssm_parameters(self) -> dict:
        return dict(A=-torch.exp(self.A_logs.float()), D=self.Ds.float(),
                    delta_bias=self.dt_projs_bias.float().reshape(-1), delta_softplus=True)

    def _scan_channels_first(self, x: torch.Tensor, backend: ScanBackend) -> torch.Tensor:
        batch, H, W, _ = x.shape
        L = H * W
        xs = backend.cross_scan(x.permute(0, 3, 1, 2))  # (B, K, D, L)
        x_dbl = torch.matmul(self.x_proj_weight, xs)  # (K, R+2N, D) @ (B, K, D, L) -> (B, K, R+2N, L)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.matmul(self.dt_projs_weight, dts)  # (K, D, R) @ (B, K, R, L) -> (B, K, D, L)
        ys = selective_scan(xs.float().reshape(batch, -1, L), dts.float().reshape(batch, -1, L),
                            B=Bs.float().contiguous(), C=Cs.float().contiguous(), backend=backend.name,
                            **self._ssm_parameters())
        return backend.cross_merge(ys.reshape(batch, NUM_DIRECTIONS, -1, L), H, W).transpose(1, 2).reshape(x.shape)

    def _scan_channels_last(self, x: torch.Tensor, backend: ScanBackend) -> torch.Tensor:
        batch, H, W, D = x.shape
        L = H * W
        xs = backend.cross_scan(x)  # (B, L, K, D)
        x_dbl = torch.einsum("blkd,kcd->blkc", xs, self.x_proj_weight)  # (B, L, K, R+2N)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=3)
        dts = torch.einsum("blkr,kdr->blkd", dts, self.dt_projs_weight).contiguous()  # (B, L, K, D)
        ys = selective_scan(_channels_view(xs), _channels_view(dts), B=_groups_view(Bs), C=_groups_view(Cs),
                            backend=backend.name, **self._ssm_parameters())
        return backend.cross_merge(ys.transpose(1, 2).reshape(batch, L, NUM_DIRECTIONS, D), H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, z = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.conv2d(u.permute(0, 3, 1, 2)))  # a channels-last view: the fast depthwise-conv layout
        y = self.out_norm(self.scan(u.permute(0, 2, 3, 1))).to(x.dtype)
        return self.out_proj(y * F.silu(z))


class VSSBlock(nn.Module):
    """``x + DropPath(SS2D(LayerNorm(x)))``: (B, H, W, C) -> (B, H, W, C)."""

    def __init__(self, dim: int, drop_path: float = 0.0, d_state: int = 16):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = SS2D(dim, d_state=d_state)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.self_attention(self.ln_1(x)))


def make_blocks(dim: int, drop_path_rates, d_state: int) -> nn.Sequential:
    """One VSS block per drop-path rate, all at width ``dim``: (B, H, W, dim) -> (B, H, W, dim)."""
    return nn.Sequential(*(VSSBlock(dim, float(rate), d_state) for rate in drop_path_rates))


def init_vssm_weights(module: nn.Module) -> None:
    """``VSSM._init_weights``: Linear -> trunc_normal(0.02), bias 0; LayerNorm -> (1, 0); convs keep defaults."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)

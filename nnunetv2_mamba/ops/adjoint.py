"""One autograd Function for every cross scan / merge pair (2D and 3D, torch and Triton): each map is a sum of
permutations, so each one's backward is the other one.

A pair is given as two plain maps, ``scan(x)``: (B, C, *S) -> (B, K, C, L) with K bound, and ``merge(ys, shape)``:
(B, K, C, L), S -> (B, C, L) with L = prod(S); :class:`AdjointPair` runs either with the other as its backward.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import torch


class Adjoint(torch.autograd.Function):
    """``linear(t)``, whose backward is ``adjoint(grad)``: a linear map given together with its adjoint."""

    @staticmethod
    def forward(ctx, t, linear, adjoint):
        ctx.adjoint = adjoint
        return linear(t)

    @staticmethod
    def backward(ctx, grad):
        return ctx.adjoint(grad), None, None


@dataclass(frozen=True)
class AdjointPair:
    """A cross scan and its merge (shapes in the module docstring), differentiable through each other."""

    scan_map: Callable[[torch.Tensor], torch.Tensor]
    merge_map: Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor]

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *S) -> (B, K, C, L); backward: the merge, back on the grid."""
        return Adjoint.apply(x, self.scan_map, functools.partial(self._merge_to_grid, tuple(x.shape[2:])))

    def merge(self, ys: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """(B, K, C, L), S -> (B, C, L); backward: the scan of the gradient seen as a (B, C, *S) grid."""
        shape = tuple(shape)
        return Adjoint.apply(ys, functools.partial(self.merge_map, shape=shape),
                             functools.partial(self._scan_from_grid, shape))

    def _merge_to_grid(self, shape: tuple[int, ...], grad: torch.Tensor) -> torch.Tensor:
        return self.merge_map(grad, shape=shape).view(grad.shape[0], grad.shape[2], *shape)

    def _scan_from_grid(self, shape: tuple[int, ...], grad: torch.Tensor) -> torch.Tensor:
        return self.scan_map(grad.reshape(grad.shape[0], grad.shape[1], *shape))

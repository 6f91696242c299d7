"""Never train on NaN: a trainer mixin that skips optimizer steps whose loss or gradients are not finite, on every
DDP rank at once."""
from __future__ import annotations

import math
from typing import List

import numpy as np
import torch
import torch.distributed as dist

from nnunetv2.utilities.helpers import dummy_context

NNUNET_CLIP_NORM = 12  # nnU-Net 2.8.1's train_step


def clip_gradients(parameters, clip_norm: float | None) -> torch.Tensor:
    """Clip the total gradient norm to ``clip_norm`` (None: leave the gradients as they are); the norm before."""
    return torch.nn.utils.clip_grad_norm_(parameters, math.inf if clip_norm is None else clip_norm)


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def ranks_with_nonfinite(value: torch.Tensor) -> int:
    """On how many ranks ``value`` holds a NaN/inf: 0 or 1 for this process alone; under torch.distributed the
    count over every rank of the default group (a sum all-reduce of a flag on ``value``'s device), so that every
    rank gets the same answer and takes the same branch."""
    flag = (~torch.isfinite(value.detach())).any().to(torch.int32).reshape(1)
    if distributed():
        dist.all_reduce(flag, op=dist.ReduceOp.SUM)
    return int(flag.item())


def fewest_over_ranks(count: int, device: torch.device) -> int:
    """``count`` itself for this process alone; under torch.distributed the smallest ``count`` of any rank (a min
    all-reduce on ``device``: the CUDA device under nccl, the CPU under gloo)."""
    if not distributed():
        return count
    value = torch.tensor([count], dtype=torch.int64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return int(value.item())


class NonFiniteLossGuard:
    """Mixin for nnU-Net trainers: a step whose loss (or, without a GradScaler, gradient norm) is NaN/inf changes
    nothing — no backward, no optimizer step, no GradScaler update — and is logged; the epoch's skips are counted
    in the log and left out of the epoch's mean train loss. An epoch in which every step was skipped raises.

    Under DDP (torch.distributed initialised; without it nothing below communicates) every decision is
    collective: the loss's finiteness is all-reduced before ``backward``, the gradient norm's before the optimizer
    step, so a NaN on one rank skips that step on all of them and the ranks' collectives (DDP's gradient
    all-reduce, nnU-Net's epoch-end ``all_gather_object``) stay in step and their parameters equal; the "every
    step skipped" error is decided by a min all-reduce of the kept steps, so all ranks raise together.

    ``train_step`` is nnU-Net 2.8.1's, re-stated because nnU-Net runs forward, backward and step in one method
    with no hook between them; the additions are the two finiteness checks and ``clip_norm`` (nnU-Net's 12; our
    trainers take it from their recipe, ``RecipeTrainer``; None for no clipping). With a
    GradScaler (CUDA AMP), non-finite *gradients* of a finite loss are left to the scaler, which skips that step
    and lowers its scale (on every rank alike: DDP has made the gradients equal by then).
    """

    @property
    def clip_norm(self) -> float | None:
        return NNUNET_CLIP_NORM

    def skip_step(self, what: str, value: torch.Tensor, ranks: int) -> dict:
        """Drop this step's gradients, log why; the returned NaN loss marks the step as skipped."""
        self.optimizer.zero_grad(set_to_none=True)
        found = (f"on {ranks} of {dist.get_world_size()} ranks (rank {dist.get_rank()}: {value.item()})"
                 if distributed() else f"({value.item()})")
        self.print_to_log_file(f"WARNING: non-finite {what} {found} in epoch {self.current_epoch}: optimizer step "
                               f"skipped, parameters unchanged")
        return {"loss": np.array(float("nan"))}

    def train_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = ([t.to(self.device, non_blocking=True) for t in target] if isinstance(target, list)
                  else target.to(self.device, non_blocking=True))
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            loss = self.loss(self.network(data), target)
        ranks = ranks_with_nonfinite(loss)
        if ranks:
            return self.skip_step("loss", loss, ranks)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            clip_gradients(self.network.parameters(), self.clip_norm)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            norm = clip_gradients(self.network.parameters(), self.clip_norm)
            ranks = ranks_with_nonfinite(norm)
            if ranks:
                return self.skip_step("gradient norm", norm, ranks)
            self.optimizer.step()
        return {"loss": loss.detach().cpu().numpy()}

    def on_train_epoch_end(self, train_outputs: List[dict]):
        kept = [o for o in train_outputs if np.isfinite(o["loss"]).all()]
        skipped = len(train_outputs) - len(kept)
        if skipped:
            self.print_to_log_file(f"epoch {self.current_epoch}: {skipped} of {len(train_outputs)} optimizer steps "
                                   f"skipped for a non-finite loss or gradient")
        if fewest_over_ranks(len(kept), self.device) == 0:
            raise RuntimeError(
                f"every training step of epoch {self.current_epoch} had a non-finite loss or gradient, so nothing "
                f"was learned. Check the data for NaN/inf values, or lower the learning rate (initial_lr="
                f"{self.initial_lr}).")
        super().on_train_epoch_end(kept)

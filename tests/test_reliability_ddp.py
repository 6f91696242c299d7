"""DDP on CPU: two processes in a gloo group train our tiny Mamba-UNet trainer as ``nnUNetv2_train -num_gpus 2``
builds it (tests/ddp_rank.py), with a NaN forced into one rank's batch. The ranks must skip the same steps (the
finiteness decision is all-reduced), finish the epoch through nnU-Net's ``all_gather_object``, hold equal
parameters, and stop together when one rank's every step is non-finite. A hang fails the test at its timeout."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nnunet_cli import on_planned_phantom, plans_variant

WORLD_SIZE = 2
RANK_SCRIPT = Path(__file__).resolve().parent / "ddp_rank.py"
PLANS = "nnUNetMambaUNetPlansSampleDice"
TIMEOUT_S = 300  # the two ranks need about 10 s; a hang ends here (their collectives give up after 60 s)


@pytest.fixture(scope="module")
def ranks(planned_phantom, tiny_mamba_plans, tmp_path_factory) -> list[dict]:
    """The results of both ranks (see tests/ddp_rank.py) on the session's phantom with our Mamba-UNet plans (patch
    32x32) and the Dice computed per sample (``batch_dice`` False, as nnU-Net plans 3d_lowres and the cascade: with batch Dice its loss all-gathers the Dice
    terms across ranks, so one rank's NaN would reach every rank's loss anyway)."""
    root = tmp_path_factory.mktemp("ddp")
    env = on_planned_phantom(planned_phantom, root / "results")
    plans_variant(tiny_mamba_plans, PLANS, lambda plans: plans["configurations"]["2d"].update(batch_dice=False))
    output = root / "ranks"
    output.mkdir()
    processes = [subprocess.Popen([sys.executable, str(RANK_SCRIPT), str(rank), str(WORLD_SIZE), str(root / "store"),
                                   str(output), PLANS], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
                 for rank in range(WORLD_SIZE)]
    logs = []
    for rank, process in enumerate(processes):
        try:
            logs.append(process.communicate(timeout=TIMEOUT_S)[0])
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            pytest.fail(f"rank {rank} still running after {TIMEOUT_S} s: the ranks' collectives fell out of step")
    for rank, (process, log) in enumerate(zip(processes, logs)):
        assert process.returncode == 0, f"rank {rank} failed ({process.returncode}):\n{log[-4000:]}"
    return [torch.load(output / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]


def skipped_steps(epoch: dict) -> list[int]:
    return [step for step, loss in enumerate(epoch["losses"]) if math.isnan(loss)]


def assert_equal_parameters(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    assert [name for name in first if not torch.equal(first[name], second[name])] == []


def test_a_nan_on_one_rank_skips_that_step_on_every_rank_and_the_epoch_ends(ranks):
    """Rank 1's second batch has a NaN pixel; rank 0's loss is finite there. Both skip step 1 only, train the
    other two, finish the epoch (nnU-Net's all_gather of the kept losses) and log the same finite train loss."""
    first_epochs = [rank["epochs"][0] for rank in ranks]
    assert [skipped_steps(epoch) for epoch in first_epochs] == [[1], [1]]
    assert all(math.isfinite(epoch["train_loss"]) for epoch in first_epochs)
    assert first_epochs[0]["train_loss"] == first_epochs[1]["train_loss"]
    log = ranks[0]["log"]
    assert "WARNING: non-finite loss on 1 of 2 ranks (rank 0: " in log
    assert "epoch 0: 1 of 3 optimizer steps skipped for a non-finite loss or gradient" in log


def test_the_ranks_hold_equal_parameters_after_a_skipped_step(ranks):
    """DDP starts every rank from rank 0's weights; after two trained steps and a skipped one they are still
    bit-equal (had one rank stepped alone, or gradients been paired with another step, they would differ)."""
    initial, trained = ([rank[key] for rank in ranks] for key in ("initial_parameters", "epochs"))
    assert_equal_parameters(initial[0], initial[1])
    assert_equal_parameters(trained[0][0]["parameters"], trained[1][0]["parameters"])
    assert any(not torch.equal(value, trained[0][0]["parameters"][name]) for name, value in initial[0].items())


def test_an_epoch_with_every_step_non_finite_on_one_rank_stops_every_rank(ranks):
    """Every batch of rank 1 has a NaN in epoch 1: both ranks skip both steps, change nothing, and raise the
    "every training step" error together, rather than one rank raising while the other waits for it."""
    last_epochs = [rank["epochs"][1] for rank in ranks]
    assert [skipped_steps(epoch) for epoch in last_epochs] == [[0, 1], [0, 1]]
    for rank, epoch in zip(ranks, last_epochs):
        assert epoch.get("error", "").startswith("every training step of epoch 1 had a non-finite loss")
        assert_equal_parameters(epoch["parameters"], rank["epochs"][0]["parameters"])


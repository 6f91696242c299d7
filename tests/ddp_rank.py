"""One rank of the two-process gloo group that tests/test_reliability_ddp.py starts:

    python tests/ddp_rank.py RANK WORLD_SIZE STORE_FILE OUTPUT_FOLDER PLANS

Builds nnUNetTrainerMambaUNet_Tiny as ``nnUNetv2_train -num_gpus 2`` does (nnU-Net's ``run_ddp``: the process
group first, then ``get_trainer_from_args`` for CUDA), then moves it to the CPU, because nnU-Net's DDP mode assumes
CUDA: CPU device, no GradScaler, and nnU-Net's ``DDP(network, device_ids=[rank])`` without the device ids. It then
trains on nnU-Net's own batches (``nnUNet_n_proc_DA=0``) through ``train_step`` and ``on_train_epoch_end`` (with
nnU-Net's ``all_gather_object``); rank 1's batches get a NaN pixel at ``NAN_STEPS_OF_RANK_1``. Writes
``rank<RANK>.pt`` to OUTPUT_FOLDER: per epoch the steps' losses (NaN: skipped), the parameters afterwards, the
logged train loss and the epoch end's error if any; the parameters before training; rank 0's log.
"""
from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as nnunet_trainer_module
from nnunetv2.run.run_training import get_trainer_from_args

DATASET_ID, TRAINER = "900", "nnUNetTrainerMambaUNet_Tiny"
NAN_STEPS_OF_RANK_1 = ({1}, {0, 1})  # epoch 0: the second of 3 steps; epoch 1: both of 2 steps
STEPS = (3, 2)
COLLECTIVE_TIMEOUT_S = 60  # a collective nobody answers fails after this long instead of hanging


def cpu_ddp_trainer(rank: int, plans: str):
    """The trainer nnU-Net's DDP mode builds on rank ``rank`` with the plans ``plans``, initialised on the CPU."""
    torch.manual_seed(rank)  # different initial weights per rank: DDP must make them equal (it broadcasts rank 0's)
    np.random.seed(rank)  # and different batches per rank (nnU-Net's data loader draws from numpy)
    nnunet_trainer_module.DDP = lambda network, device_ids: DistributedDataParallel(network)
    trainer = get_trainer_from_args(DATASET_ID, "2d", 0, TRAINER, plans, device=torch.device("cuda"))
    assert trainer.is_ddp and trainer.local_rank == rank
    trainer.device, trainer.grad_scaler = torch.device("cpu"), None
    trainer.initialize()
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    return trainer


def parameters_of(trainer) -> dict:
    return {name: value.detach().clone() for name, value in trainer.network.module.state_dict().items()}


def train_epoch(trainer, epoch: int, rank: int) -> dict:
    trainer.current_epoch = epoch
    trainer.on_train_epoch_start()
    outputs = []
    for step in range(STEPS[epoch]):
        batch = next(trainer.dataloader_train)
        if rank == 1 and step in NAN_STEPS_OF_RANK_1[epoch]:
            batch["data"][0, 0, 3, 5] = float("nan")
        outputs.append(trainer.train_step(batch))
    record = {"losses": [float(output["loss"]) for output in outputs]}
    try:
        trainer.on_train_epoch_end(outputs)
        record["train_loss"] = float(trainer.logger.get_value("train_losses", step=-1))
    except RuntimeError as error:
        record["error"] = str(error)
    record["parameters"] = parameters_of(trainer)
    return record


def main(rank: int, world_size: int, store: str, output: Path, plans: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    trainer = cpu_ddp_trainer(rank, plans)
    result = {"initial_parameters": parameters_of(trainer),
              "epochs": [train_epoch(trainer, epoch, rank) for epoch in range(len(STEPS))]}
    if rank == 0:
        result["log"] = Path(trainer.log_file).read_text()
    torch.save(result, output / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), sys.argv[5])

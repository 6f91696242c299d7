"""The trainer that the ``ddp`` check of benchmarks/gpu_check.py trains (it puts this folder on nnUNet_extTrainer);
check machinery, not a trainer to use. nnUNetTrainerMambaUNet_Tiny (2 epochs x 3 steps) with a NaN pixel in the
batch of the last rank at NAN_STEPS, which writes per rank, when training ends, ``ddp_check_rank<R>.json`` into the
fold folder: the steps it skipped (its loss came back NaN) and a SHA-256 of its final network state. The final
validation (prediction of the held-out cases, nothing the NaN guard touches) is skipped to keep the check short."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
import torch.distributed as dist

from nnunetv2_mamba.training.base import unwrap_network
from nnunetv2_mamba.training.trainers import nnUNetTrainerMambaUNet_Tiny

NAN_STEPS = (1, 5)  # of the 6 training steps, counted from 0: one in each epoch


def state_digest(network: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, value in network.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class nnUNetTrainerMambaUNet_TinyNaNOnLastRank(nnUNetTrainerMambaUNet_Tiny):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.world_size = dist.get_world_size() if self.is_ddp else 1
        self.steps_taken, self.skipped_steps = 0, []

    def train_step(self, batch: dict) -> dict:
        if self.local_rank == self.world_size - 1 and self.steps_taken in NAN_STEPS:
            data = batch["data"].clone()
            data.view(-1)[7] = float("nan")
            batch = {**batch, "data": data}
        output = super().train_step(batch)
        if math.isnan(float(output["loss"])):
            self.skipped_steps.append(self.steps_taken)
        self.steps_taken += 1
        return output

    def on_train_end(self):
        super().on_train_end()
        record = {"rank": self.local_rank, "world_size": self.world_size, "nan_steps": list(NAN_STEPS),
                  "steps": self.steps_taken, "skipped_steps": self.skipped_steps,
                  "state_sha256": state_digest(unwrap_network(self.network))}
        Path(self.output_folder, f"ddp_check_rank{self.local_rank}.json").write_text(json.dumps(record))

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("final validation skipped by the ddp check's trainer")

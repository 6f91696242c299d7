"""VMamba-initialised encoders: read a local checkpoint named by an environment variable at training start."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from nnunetv2_mamba.training.base import unwrap_network

PRETRAINED_ENV = "nnUNet_mamba_pretrained"


def pretrained_checkpoint_path() -> Path:
    """The file named by ``nnUNet_mamba_pretrained``; one clear error when it is unset or missing."""
    value = os.environ.get(PRETRAINED_ENV, "").strip()
    if not value:
        raise RuntimeError(
            f"This trainer starts from VMamba ImageNet weights: set {PRETRAINED_ENV} to a local VMamba v0 "
            f"checkpoint (e.g. vssmtiny_dp01_ckpt_epoch_292.pth), or use the trainer without _Pretrained.")
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{PRETRAINED_ENV}={value} is not a file; point it at a local VMamba checkpoint.")
    return path


class PretrainedEncoder:
    """Mixin for the VSS U-Net trainers: loads VMamba weights into the encoder (and the mirrored decoder blocks,
    as both papers do) when a training starts from scratch. Never on ``--c``, ``--val`` or at prediction."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.pretrained_path = None

    def on_train_start(self):
        starts_from_scratch = self.current_epoch == 0
        if starts_from_scratch:
            self.pretrained_path = pretrained_checkpoint_path()
        super().on_train_start()
        if starts_from_scratch:
            from nnunetv2_mamba.nets import load_vmamba_pretrained
            report = load_vmamba_pretrained(unwrap_network(self.network), self.pretrained_path,
                                            init_decoder_from_encoder=True)
            self.print_to_log_file(report.summary())

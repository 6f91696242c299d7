"""``nnunetv2_mamba trainers-path``: print the folder to put in ``nnUNet_extTrainer``."""
from __future__ import annotations

from pathlib import Path

SHIM_FOLDER = Path(__file__).resolve().parent.parent / "trainer_shims"


def add_arguments(parser) -> None:
    parser.epilog = "Usage: export nnUNet_extTrainer=$(nnunetv2_mamba trainers-path)"


def run(args) -> int:
    print(SHIM_FOLDER)
    return 0

"""``nnunetv2_mamba trainers-path``: print the folder to put in ``nnUNet_extTrainer``.

That folder is the repository's ``trainers/``, installed as the package ``nnunetv2_mamba.ext_trainers`` (see
pyproject.toml): in a checkout or an editable install it is ``<repo>/trainers`` itself, in a wheel its copy.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

TRAINERS_PACKAGE = "nnunetv2_mamba.ext_trainers"


def trainers_folder() -> Path:
    """The folder nnU-Net's trainer search should scan, found without importing the trainers."""
    return Path(importlib.util.find_spec(TRAINERS_PACKAGE).submodule_search_locations[0])


def add_arguments(parser) -> None:
    parser.epilog = "Usage: export nnUNet_extTrainer=$(nnunetv2_mamba trainers-path)"


def run(args) -> int:
    print(trainers_folder())
    return 0

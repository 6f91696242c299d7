"""``nnunetv2_mamba set-pretrained``: name a VMamba checkpoint in the plans for the ``_Pretrained`` trainers.

The file is first loaded into the network the trainer builds from these plans (the report is printed), so a file
that does not fit is refused before anything is written; then its absolute path is stored in the plans under
``nnunetv2_mamba_pretrained`` for that network (Mamba-UNet and VM-UNet each have their own entry).
"""
from __future__ import annotations

import json
from pathlib import Path

from nnunetv2_mamba.training.convert_vmamba import add_vmamba_arguments


def add_arguments(parser) -> None:
    add_vmamba_arguments(parser)
    parser.epilog = ("Then: nnUNetv2_train DATASET 2d FOLD -tr nnUNetTrainerMambaUNet_Pretrained -p PLANS; the "
                     "training log says what was loaded. VMamba files: docs/training.md, \"Warm start\".")


def run(args) -> int:
    from nnunetv2_mamba.training.convert_vmamba import network_with_vmamba_weights
    from nnunetv2_mamba.training.warm_start import PLANS_KEY

    trainer_class, plans_file, plans, _, _ = network_with_vmamba_weights(args)
    network_name = trainer_class.network_class.__name__
    path = str(Path(args.vmamba_checkpoint).expanduser().resolve())
    plans[PLANS_KEY] = {**(plans.get(PLANS_KEY) or {}), network_name: path}
    temporary = plans_file.with_name(plans_file.name + ".partial")
    temporary.write_text(json.dumps(plans, indent=4))
    temporary.replace(plans_file)
    print(f"{plans_file}: {PLANS_KEY}.{network_name} = {path}")
    return 0

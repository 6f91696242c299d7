"""The ``nnunetv2_mamba`` command: one subcommand per module, imported only when it is run.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` and keeps heavy imports
(torch, nnunetv2) inside ``run`` so that ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("nnunetv2_mamba.doctor", "report which selective-scan backend is used and why"),
    "trainers-path": ("nnunetv2_mamba.training.ext_trainer_folder", "print the folder to put in nnUNet_extTrainer"),
    "plan_and_preprocess": ("nnunetv2_mamba.experiment_planning.cli",
                            "fingerprint, plan with the Mamba planner and preprocess a dataset"),
    "convert-vmamba": ("nnunetv2_mamba.training.convert_vmamba",
                       "a VMamba checkpoint as an nnUNetv2_train -pretrained_weights file for a trainer and plans"),
    "set-pretrained": ("nnunetv2_mamba.training.set_pretrained",
                       "name a VMamba checkpoint in the plans for the _Pretrained trainers"),
    "evaluate": ("nnunetv2_mamba.evaluation.cli",
                 "Dice/IoU/Acc/Pre/Sen/Spe/HD95/ASD of a prediction folder (JSON + CSV)"),
    "benchmark": ("nnunetv2_mamba.comparison.cli",
                  "compare methods (a trainer on its own plans) over cross-validation, ensemble, predict; report"),
    "predict-best": ("nnunetv2_mamba.comparison.predict_best",
                     "predict a folder with nnU-Net's chosen model or ensemble, postprocess, score, export zips"),
    "demo": ("nnunetv2_mamba.demo.cli",
             "the whole job on a synthetic cardiac phantom: plan, train, predict, report"),
    "make-dataset": ("nnunetv2_mamba.synthetic.cli",
                     "write a synthetic 2-D nnU-Net raw dataset (cardiac, vessels, lesions, two_channel)"),
    "make-phantom": ("nnunetv2_mamba.synthetic.phantom_cli",
                     "write the synthetic ACDC-like cardiac dataset (make-dataset cardiac)"),
}


def build_parser(selected: str | None) -> argparse.ArgumentParser:
    """Parser with every subcommand listed; only ``selected`` gets its module imported for its arguments."""
    parser = argparse.ArgumentParser(
        prog="nnunetv2_mamba",
        description="Mamba-UNet and VM-UNet for nnU-Net v2. Training and prediction use the stock "
                    "nnUNetv2_* commands with -tr nnUNetTrainerMambaUNet / nnUNetTrainerVMUNet.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(module_name).add_arguments(command_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    selected = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(selected if selected in COMMANDS else None).parse_args(argv)
    if args.command is None:
        build_parser(None).print_help()
        return 2
    return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

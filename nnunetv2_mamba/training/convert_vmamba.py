"""``nnunetv2_mamba convert-vmamba``: a VMamba ImageNet checkpoint as a file for ``nnUNetv2_train -pretrained_weights``.

nnU-Net's flag wants a checkpoint holding every tensor of the network, so the network is built exactly as the
trainer will build it (dataset, plans, configuration), VMamba's tensors go where they fit, the rest keeps the
network's own initialisation, and the load report is printed and stored in the file. The arguments and the
network building are shared with ``set-pretrained``.
"""
from __future__ import annotations

import json
from pathlib import Path

EPILOG = ("Then: nnUNetv2_train DATASET 2d FOLD -tr TRAINER -p PLANS -pretrained_weights OUT, with any Mamba-UNet "
          "(or VM-UNet) trainer of the network the file was made for. VMamba files: docs/training.md, \"Warm start\".")


def add_vmamba_arguments(parser) -> None:
    """The arguments ``convert-vmamba`` and ``set-pretrained`` share."""
    parser.add_argument("vmamba_checkpoint", help="a local VMamba classification checkpoint (.pth), v0 names "
                        "(vssmtiny_dp01_ckpt_epoch_292.pth, vmamba_small_e238_ema.pth) or v2+ names")
    parser.add_argument("-d", dest="dataset", required=True, help="dataset name or id, as for nnUNetv2_train")
    parser.add_argument("-tr", dest="trainer", required=True,
                        help="the Mamba-UNet/VM-UNet trainer you will train with: it decides the network and widths")
    parser.add_argument("-p", dest="plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("-c", dest="configuration", default="2d", help="configuration (default: 2d)")


def vss_trainer_class(name: str):
    """A trainer of ours by name, else one nnU-Net's search finds (a user's subclass in nnUNet_extTrainer)."""
    from nnunetv2_mamba.training import trainers
    from nnunetv2_mamba.training.base import VSSUNetTrainerBase

    trainer_class = getattr(trainers, name, None)
    if trainer_class is None:
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
        trainer_class = recursive_find_trainer_class_by_name(name)
    if not (isinstance(trainer_class, type) and issubclass(trainer_class, VSSUNetTrainerBase)):
        raise SystemExit(f"-tr {name} is not a Mamba-UNet or VM-UNet trainer; VMamba weights fit only those "
                         f"(e.g. -tr nnUNetTrainerMambaUNet).")
    return trainer_class


def plans_and_dataset_files(dataset: str, plans: str) -> tuple[Path, Path]:
    """nnUNet_preprocessed/<dataset>/<plans>.json and its dataset.json; one error saying what to run if absent."""
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    if not nnUNet_preprocessed:
        raise SystemExit("nnUNet_preprocessed is not set: export it as for nnUNetv2_train.")
    folder = Path(nnUNet_preprocessed) / maybe_convert_to_dataset_name(dataset)
    plans_file, dataset_file = folder / f"{plans}.json", folder / "dataset.json"
    if not plans_file.is_file() or not dataset_file.is_file():
        raise SystemExit(f"{plans_file} or {dataset_file} is missing: run nnUNetv2_plan_and_preprocess -d {dataset} "
                         f"-c 2d (or nnunetv2_mamba plan_and_preprocess) first, or give the plans with -p.")
    return plans_file, dataset_file


def network_with_vmamba_weights(args):
    """(trainer class, plans file, plans, network, load report) for the parsed shared arguments."""
    from nnunetv2_mamba.nets import PretrainedCheckpointError
    from nnunetv2_mamba.training.warm_start import load_into, network_for

    trainer_class = vss_trainer_class(args.trainer)
    plans_file, dataset_file = plans_and_dataset_files(args.dataset, args.plans)
    plans, dataset_json = json.loads(plans_file.read_text()), json.loads(dataset_file.read_text())
    network = network_for(trainer_class, plans, args.configuration, dataset_json)
    try:
        report = load_into(network, Path(args.vmamba_checkpoint).expanduser())
    except PretrainedCheckpointError as err:
        raise SystemExit(str(err)) from None
    print(report.summary())
    return trainer_class, plans_file, plans, network, report


def add_arguments(parser) -> None:
    add_vmamba_arguments(parser)
    parser.add_argument("-o", dest="output", required=True, help="the file to write (e.g. mambaunet_init.pth)")
    parser.epilog = EPILOG


def run(args) -> int:
    from nnunetv2_mamba.training.warm_start import write_initial_weights

    trainer_class, _, _, network, report = network_with_vmamba_weights(args)
    write_initial_weights(network, report, trainer_class.__name__, args.output)
    print(f"wrote {args.output}: {len(network.state_dict())} tensors for nnUNetv2_train -tr {args.trainer} "
          f"-p {args.plans} -pretrained_weights {args.output}")
    return 0

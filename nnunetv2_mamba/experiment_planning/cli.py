"""``nnunetv2_mamba plan_and_preprocess``: fingerprint (if needed), plan with our planners, preprocess.

nnU-Net's ``-pl`` only finds planners inside nnunetv2, so this calls its Python API with our planner classes.
"""
from __future__ import annotations

NETWORKS = ("MambaUNet", "VMUNet")
CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres")


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset_id", type=int, nargs="+", required=True, help="dataset id(s), e.g. 900")
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS),
                        help="plans to write: MambaUNet -> nnUNetMambaUNetPlans, VMUNet -> nnUNetVMUNetPlans")
    parser.add_argument("-c", "--configurations", nargs="+", default=list(CONFIGURATIONS),
                        help="configurations to preprocess, as nnU-Net's -c (default 2d 3d_fullres 3d_lowres; those "
                             "the plans lack, e.g. 3d for a 2D dataset, are skipped)")
    parser.add_argument("-np", type=int, default=4, help="processes for preprocessing (default 4)")
    parser.add_argument("-npfp", type=int, default=4, help="processes for fingerprint extraction (default 4)")
    parser.add_argument("-gpu_memory_target", type=float, default=8.0,
                        help="GPU memory (GiB) the batch size is planned for (default 8, as nnU-Net)")
    parser.add_argument("--clean", action="store_true",
                        help="re-extract the fingerprint and preprocess again even where the data exist")
    parser.add_argument("--verify_dataset_integrity", action="store_true")
    parser.add_argument("--no_pp", action="store_true", help="plan only, do not preprocess")


def missing_data(dataset_id: int, plans: dict, configurations, clean: bool) -> list[str]:
    """The ``configurations`` of ``plans`` whose preprocessed data folder is missing (all of them with ``clean``);
    one that shares nnUNetPlans' data identifier is not preprocessed again (nnU-Net would delete and rewrite the
    folder under any training reading it)."""
    from os.path import isdir, join

    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager, folder = PlansManager(plans), join(nnUNet_preprocessed, convert_id_to_dataset_name(dataset_id))
    planned = [c for c in configurations if c in manager.available_configurations]
    missing = [c for c in planned if clean or not isdir(join(folder, manager.get_configuration(c).data_identifier))]
    for configuration in sorted(set(planned) - set(missing)):
        print(f"{configuration}: preprocessed data {manager.get_configuration(configuration).data_identifier} exist "
              "already, not preprocessed again (--clean does)")
    return missing


def run(args) -> int:
    from os.path import isfile, join

    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset, plan_experiment_dataset, preprocess_dataset)
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    from nnunetv2_mamba.experiment_planning.planners import PLANNERS

    for dataset_id in args.dataset_id:
        fingerprint = join(nnUNet_preprocessed, convert_id_to_dataset_name(dataset_id), "dataset_fingerprint.json")
        if args.clean or not isfile(fingerprint):
            extract_fingerprint_dataset(dataset_id, num_processes=args.npfp,
                                        check_dataset_integrity=args.verify_dataset_integrity)
        for network in args.networks:
            plans, plans_identifier = plan_experiment_dataset(dataset_id, PLANNERS[network], args.gpu_memory_target)
            if not args.no_pp:
                missing = missing_data(dataset_id, plans, args.configurations, args.clean)
                if missing:
                    preprocess_dataset(dataset_id, plans_identifier, configurations=missing,
                                       num_processes=[args.np])
            for configuration in plans["configurations"]:
                print(f"{network}: nnUNetv2_train {dataset_id} {configuration} FOLD -p {plans_identifier} "
                      f"-tr nnUNetTrainer{network}")
    return 0

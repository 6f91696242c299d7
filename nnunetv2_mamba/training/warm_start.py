"""Warm start from VMamba ImageNet weights (docs/architecture.md, "Pretrained weights"), two ways:

- ``nnunetv2_mamba set-pretrained VMAMBA.pth -d D -tr T``: the VMamba file's path goes into the plans
  (``PLANS_KEY``, per network); the ``_Pretrained`` trainers load it when a training starts at epoch 0 and write the
  load report to the training log.
- ``nnunetv2_mamba convert-vmamba VMAMBA.pth -d D -tr T -o init.pth``: a file for nnU-Net's own
  ``nnUNetv2_train ... -pretrained_weights init.pth``, usable with every trainer of the network (any recipe).

Either way the encoder (and, as both papers do, the mirrored decoder blocks) gets VMamba's tensors where shapes fit;
nothing is read again on ``--c``, ``--val`` or at prediction.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_mamba.nets.vmamba_weights import PretrainedLoadReport, load_vmamba_pretrained
from nnunetv2_mamba.training.base import unwrap_network
from nnunetv2_mamba.training.checkpoints import save_atomically

#: plans[PLANS_KEY] = {network class name (``MambaUNet``, ``VMUNet``): absolute path of a VMamba checkpoint}
PLANS_KEY = "nnunetv2_mamba_pretrained"
#: what ``write_initial_weights`` stores besides ``network_weights``: the load report, as plain data
REPORT_KEY = "vmamba_load_report"


def network_for(trainer_class, plans: dict, configuration: str, dataset_json: dict) -> nn.Module:
    """The network ``trainer_class`` builds for these plans, configuration and dataset, with its deep-supervision
    heads (their keys are a superset of the network built without them)."""
    plans_manager = PlansManager(plans)
    configuration_manager = plans_manager.get_configuration(configuration)
    return trainer_class.build_network_architecture(
        plans_manager, configuration_manager,
        determine_num_input_channels(plans_manager, configuration_manager, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads, True)


def load_into(network: nn.Module, vmamba_path) -> PretrainedLoadReport:
    """VMamba's tensors into the encoder and the mirrored decoder blocks of ``network`` (a bare network)."""
    return load_vmamba_pretrained(network, vmamba_path, init_decoder_from_encoder=True)


def report_record(report: PretrainedLoadReport) -> dict:
    """The report as plain data (what ``torch.load(weights_only=True)`` reads back)."""
    return {"summary": report.summary(), "path": report.path, "checkpoint_format": report.checkpoint_format,
            "loaded": report.loaded, "adapted": report.adapted, "shape_mismatched": report.shape_mismatched,
            "skipped": report.skipped, "not_loaded": report.not_loaded}


def write_initial_weights(network: nn.Module, report: PretrainedLoadReport, trainer_name: str, path) -> None:
    """An nnU-Net checkpoint dict that ``nnUNetv2_train -pretrained_weights`` accepts: every tensor of
    ``network`` in ``network_weights``, the load report under ``REPORT_KEY``. Written atomically."""
    checkpoint = {"network_weights": network.state_dict(), "trainer_name": trainer_name,
                  REPORT_KEY: report_record(report)}
    save_atomically(lambda name: torch.save(checkpoint, name), str(path))


def pretrained_path_in_plans(plans: dict, network_name: str, trainer_name: str) -> Path:
    """The VMamba file the plans name for ``network_name``; one error saying what to do if none or missing."""
    value = (plans.get(PLANS_KEY) or {}).get(network_name)
    if not value:
        raise RuntimeError(
            f"{trainer_name} starts from VMamba ImageNet weights, but the plans {plans.get('plans_name')!r} name no "
            f"VMamba checkpoint for {network_name}. Run: nnunetv2_mamba set-pretrained VMAMBA.pth -d DATASET "
            f"-tr {trainer_name} -p {plans.get('plans_name')} (docs/training.md, \"Warm start\"), or train without "
            "_Pretrained.")
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"the plans {plans.get('plans_name')!r} name {value} as the VMamba checkpoint for "
                                f"{network_name}, but it is not a file: put it back or run set-pretrained again.")
    return path


class PretrainedEncoder:
    """Mixin for the VSS U-Net trainers: a training that starts at epoch 0 loads the VMamba checkpoint the plans
    name (``PLANS_KEY``) into the encoder and the mirrored decoder blocks, and logs what it loaded. ``--c`` (a
    checkpoint's epoch is at least 1), ``--val`` (no training start) and prediction never read it."""

    def on_train_start(self):
        path = None
        if self.current_epoch == 0:  # before nnU-Net's data preparation: a missing file fails at once
            path = pretrained_path_in_plans(self.plans_manager.plans, self.network_class.__name__,
                                            type(self).__name__)
        super().on_train_start()
        if path is not None:
            self.print_to_log_file(load_into(unwrap_network(self.network), path).summary())

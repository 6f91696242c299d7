"""Cost of one trainer's network at the plans' patch and batch size: parameters, FLOPs, fwd+bwd time, peak memory.

Run as ``python -m nnunetv2_mamba.comparison.cost TRAINER PLANS_JSON DATASET_JSON CONFIG DEVICE OUTPUT_JSON`` (a fresh
process, so that its peak memory is the network's alone: the benchmark runs it as a job on the kind of node the
training ran on); writes its result as JSON to OUTPUT_JSON.

FLOPs: forward, batch 1, one patch; fwd+bwd time: the fastest of ``repeats`` training passes (seconds); peak
memory: the largest in use during them, the network's weights included (on CUDA torch's allocator, on the CPU the
process's resident set size with the Python/torch runtime). What each number means exactly:
nnunetv2_mamba/measurement.
"""
from __future__ import annotations

import json
import os
import sys

from nnunetv2_mamba.measurement import count_flops, peak_memory, timed_runs

__all__ = ["build_network", "count_flops", "measure", "main"]


def build_network(trainer_name: str, plans: dict, dataset_json: dict, configuration: str):
    """The network ``trainer_name`` trains for these plans (deep supervision on, as in training)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    trainer = recursive_find_trainer_class_by_name(trainer_name)
    plans_manager = PlansManager(plans)
    configuration_manager = plans_manager.get_configuration(configuration)
    label_manager = plans_manager.get_label_manager(dataset_json)
    channels = determine_num_input_channels(plans_manager, configuration_manager, dataset_json)
    network = trainer.build_network_architecture(plans_manager, configuration_manager, channels,
                                                 label_manager.num_segmentation_heads, True)
    return network, channels, list(configuration_manager.patch_size), configuration_manager.batch_size


def measure(trainer_name: str, plans: dict, dataset_json: dict, configuration: str, device: str,
            repeats: int = 2) -> dict:
    """{"parameters", "flops", "flops_counter", "flops_scan", "fwd_bwd_seconds", "peak_memory_mb"}."""
    import torch

    network, channels, patch, batch = build_network(trainer_name, plans, dataset_json, configuration)
    network = network.to(device)
    parameters = sum(p.numel() for p in network.parameters())
    network.eval()
    flops, scanned = count_flops(network, torch.zeros(1, channels, *patch, device=device))
    network.train()

    def forward_backward() -> None:
        outputs = network(torch.randn(batch, channels, *patch, device=device))
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        sum(o.float().mean() for o in outputs).backward()
        network.zero_grad(set_to_none=True)
    with peak_memory(device) as memory:
        timings, _ = timed_runs(forward_backward, device, warmup=0, repeats=repeats)
    return {"parameters": parameters, "flops": flops, "flops_counter": flops - scanned, "flops_scan": scanned,
            "fwd_bwd_seconds": min(timings), "peak_memory_mb": memory.peak_mib, "patch_size": patch,
            "batch_size": batch, "device": device}


def main(argv: list[str]) -> int:
    trainer, plans_file, dataset_file, configuration, device, output = argv
    with open(plans_file) as p, open(dataset_file) as d:
        cost = measure(trainer, json.load(p), json.load(d), configuration, device)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as handle:
        json.dump(cost, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

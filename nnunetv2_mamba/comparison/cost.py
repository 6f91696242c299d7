"""Cost of one trainer's network at the plans' patch and batch size: parameters, FLOPs, fwd+bwd time, peak memory.

Run as ``python -m nnunetv2_mamba.comparison.cost TRAINER PLANS_JSON DATASET_JSON CONFIG DEVICE`` (a fresh process,
so that its peak memory is the network's alone); prints one JSON line.

FLOPs (forward, batch 1, one patch) = torch.utils.flop_counter.FlopCounterMode (convolutions, matmuls,
attention; it counts one multiply-add as 2 FLOPs and skips elementwise ops) + the selective scan, counted
analytically as 9·B·L·D·N per scan call (B batch, L sequence length, D = directions x inner channels, N state
size: the rule used by VMamba's FLOP counter), because the counter does not see the scan's elementwise recurrence.
Peak memory: CUDA -> torch.cuda.max_memory_allocated over one fwd+bwd; CPU -> the process's peak resident set size
(ru_maxrss, includes the Python/torch runtime).
"""
from __future__ import annotations

import json
import resource
import sys
import time
from contextlib import contextmanager


def scan_flops(u, A) -> int:
    """9·B·L·D·N of one selective-scan call with u (B, D, L) and A (D, N)."""
    batch, channels, length = u.shape
    return 9 * batch * length * channels * A.shape[1]


@contextmanager
def counted_scan(counter: list):
    """Replace SS2D's selective scan by a shape-preserving no-op that adds its analytical FLOPs to ``counter``."""
    import nnunetv2_mamba.nets.ss2d as ss2d

    original = ss2d.selective_scan

    def stand_in(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, **_):
        counter.append(scan_flops(u, A))
        return delta.clone()

    ss2d.selective_scan = stand_in
    try:
        yield
    finally:
        ss2d.selective_scan = original


def count_flops(network, example) -> tuple[int, int]:
    """(FlopCounterMode FLOPs, analytical scan FLOPs) of one forward pass of ``network`` on ``example``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    scans: list[int] = []
    with torch.no_grad(), counted_scan(scans), FlopCounterMode(display=False) as mode:
        network(example)
    return int(mode.get_total_flops()), int(sum(scans))


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
    counted, scanned = count_flops(network, torch.zeros(1, channels, *patch, device=device))
    network.train()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = network(torch.randn(batch, channels, *patch, device=device))
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        sum(o.float().mean() for o in outputs).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
        network.zero_grad(set_to_none=True)
    peak = (torch.cuda.max_memory_allocated() / 2 ** 20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"parameters": parameters, "flops": counted + scanned, "flops_counter": counted, "flops_scan": scanned,
            "fwd_bwd_seconds": min(timings), "peak_memory_mb": peak, "patch_size": patch, "batch_size": batch,
            "device": device}


def main(argv: list[str]) -> int:
    trainer, plans_file, dataset_file, configuration, device = argv
    with open(plans_file) as p, open(dataset_file) as d:
        print(json.dumps(measure(trainer, json.load(p), json.load(d), configuration, device)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

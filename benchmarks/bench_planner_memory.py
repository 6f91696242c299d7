"""Planner memory model vs the measured peak memory of a CPU training step.

For each network and patch size, a fresh subprocess records its resident memory before building anything, then
builds the network (deep supervision on, as nnU-Net trains it) with nnU-Net's SGD (momentum 0.99) and runs two
training steps (forward, cross-entropy on every output, backward, optimiser step); measured = peak RSS minus the
RSS before. The estimate is ``NetworkMemoryModel.training_bytes`` (weights + gradients + momentum + activations)
without its Triton backward workspace, which the CPU scans do not allocate; that term is printed beside it.

    python benchmarks/bench_planner_memory.py [--networks MambaUNet VMUNet] [--patch-sizes 128x128 256x224]
    python benchmarks/bench_planner_memory.py --patch-sizes 32x32x32 32x64x64     # 3D (SS3D, K = 6)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

MIB = 2 ** 20


def measure(network: str, patch_size: list[int], batch_size: int) -> dict:
    """Runs in the child: the measured delta and the model's estimate, in bytes."""
    import torch
    import torch.nn.functional as F

    from nnunetv2_mamba.experiment_planning.memory import measure_memory_model
    from nnunetv2_mamba.experiment_planning.planners import PLANNERS
    from nnunetv2_mamba.measurement import peak_memory

    planner = PLANNERS[network]
    kwargs = {**planner.network_kwargs, "spatial_dims": len(patch_size)}
    model = measure_memory_model(planner.network_class, 1, 4, kwargs)
    torch.manual_seed(0)
    with peak_memory("cpu") as memory:
        net = planner.network_class(1, 4, deep_supervision=True, **kwargs)
        optimizer = torch.optim.SGD(net.parameters(), 1e-2, momentum=0.99, nesterov=True)
        x = torch.randn(batch_size, 1, *patch_size)
        for _ in range(2):
            optimizer.zero_grad(set_to_none=True)
            outputs = net(x)
            loss = sum(F.cross_entropy(o, torch.zeros(o.shape[0], *o.shape[2:], dtype=torch.long))
                       for o in outputs)
            loss.backward()
            optimizer.step()
            del outputs, loss
    workspace = model.workspace_bytes(patch_size, batch_size)
    return {"measured": memory.extra_mib * MIB, "estimated": model.training_bytes(patch_size, batch_size) - workspace,
            "triton_workspace": workspace,
            "static": model.static_bytes(), "activations": model.activation_bytes(patch_size, batch_size)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=["MambaUNet", "VMUNet"])
    parser.add_argument("--patch-sizes", nargs="+", default=["128x128", "256x224"])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        network, patch, batch = args.child
        print(json.dumps(measure(network, [int(s) for s in patch.split("x")], int(batch))))
        return 0
    print(f"{'network':10} {'patch':>8} {'batch':>5} {'measured MiB':>13} {'estimated MiB':>14} {'error':>7} "
          f"{'+ Triton workspace MiB':>22}")
    worst = 0.0
    for network in args.networks:
        for patch in args.patch_sizes:
            child = subprocess.run([sys.executable, __file__, "--child", network, patch, str(args.batch_size)],
                                   capture_output=True, text=True, check=True)
            result = json.loads(child.stdout.strip().splitlines()[-1])
            error = result["estimated"] / result["measured"] - 1
            worst = max(worst, abs(error))
            print(f"{network:10} {patch:>8} {args.batch_size:>5} {result['measured'] / MIB:13.0f} "
                  f"{result['estimated'] / MIB:14.0f} {error:+7.1%} {result['triton_workspace'] / MIB:22.0f}",
                  flush=True)
    print(f"worst relative error {worst:.1%} ({'within' if worst <= 0.3 else 'OUTSIDE'} the +-30% target)")
    return 0 if worst <= 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())

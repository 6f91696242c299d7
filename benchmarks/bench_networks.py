"""Time Mamba-UNet and VM-UNet against nnU-Net's PlainConvUNet and print markdown tables.

Measured, each in a fresh subprocess (so its peak memory is its own), median of ``--repeats`` after ``--warmup``:
- SS2D (SS3D with ``--spatial-dims 3``) and VSS block forward + backward at the four encoder stages of a
  ``--patch`` input (widths 96..768, resolutions patch/4 .. patch/32);
- a whole nnU-Net training iteration per network at ``--patch`` and ``--batch``: forward with deep supervision,
  nnU-Net's loss (Dice + CE, DeepSupervisionWrapper), backward, gradient clipping at 12, SGD step
  (lr 1e-2, momentum 0.99, Nesterov, weight decay 3e-5);
- inference per image (eval mode, no grad, batch 1, one patch);
- parameter counts, and the ratios to PlainConvUNet measured in the same run (``--rounds R``: medians of the
  ratios of R rounds, each measuring every network in turn, for a machine whose load changes).

PlainConvUNet is built as nnU-Net's default 2d (3d_fullres) plans build it for a ``--patch`` patch, 1 input
channel and 4 classes: the topology from nnU-Net's own ``get_pool_and_conv_props`` (isotropic spacing, feature maps
down to 4), 32 features doubling to at most 512 (320 in 3D), two 3x3(x3) convs per stage and per decoder stage,
InstanceNorm, LeakyReLU. In 3D the Mamba networks are the paper widths with SS3D (K = 6), patch 4, merges of 2.

On a shared, loaded CPU prefer ``--threads 1``: with more threads than free cores, OpenMP's per-operation
barriers stall the selective scan's thousands of small in-place operations and the timings scatter by 10x.

    python benchmarks/bench_networks.py --threads 2 --patch 128 --batch 2 --repeats 3 --out results.md
    python benchmarks/bench_networks.py --threads 2 --patch 224 192 --batch 6 --no-blocks --busy 2
    python benchmarks/bench_networks.py --spatial-dims 3 --threads 2 --patch 64 --batch 2 --repeats 3
    python benchmarks/bench_networks.py --profile MambaUNet      # torch.profiler table of one training step
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Callable, Sequence

import torch

from nnunetv2_mamba.measurement import median, peak_memory, timed_runs
from nnunetv2_mamba.measurement.machine import machine_description
from nnunetv2_mamba.measurement.networks import BASELINE, NETWORKS, build_network, inference, training_step
from processes import busy_processes, run_measurement

BLOCKS = ("SS2D", "VSSBlock")
STAGE_DIMS = (96, 192, 384, 768)


def stage_size(patch: tuple[int, ...], stage: int) -> tuple[int, ...]:
    """(H, W) or (D, H, W) of the VSS encoder's stage ``stage`` (0..3): the patch divided by 4, 8, 16, 32."""
    return tuple(edge // (4 * 2 ** stage) for edge in patch)


def block_pass(block: str, stage: int, patch: tuple[int, ...], batch: int,
               device: str) -> tuple[Callable[[], None], torch.nn.Module]:
    """(forward + backward of one SS2D (SS3D for a volume) or VSS block at encoder stage ``stage``, the module)."""
    from nnunetv2_mamba.nets import SS2D, SS3D, VSSBlock
    dim, size = STAGE_DIMS[stage], stage_size(patch, stage)
    mixer = SS2D if len(patch) == 2 else SS3D
    module = (mixer(dim) if block == "SS2D" else VSSBlock(dim, mixer=mixer)).to(device)
    x = torch.randn(batch, *size, dim, device=device, requires_grad=True)

    def run() -> None:
        module(x).sum().backward()
    return run, module


def measure(what: str, name: str, stage: int, args) -> dict:
    """Median seconds, all timings, peak extra memory (MiB) and parameter count of one measurement, here."""
    torch.manual_seed(0)
    if what in ("train", "infer"):
        module = build_network(name, args.patch, deep_supervision=what == "train").to(args.device)
        run = (training_step(module, args.patch, args.batch, args.device, amp=False) if what == "train" else
               inference(module, args.patch, args.device, amp=False))
    else:
        run, module = block_pass(name, stage, args.patch, args.batch, args.device)
    with peak_memory(args.device) as memory:
        times, _ = timed_runs(run, args.device, args.warmup, args.repeats)
    parameters = sum(p.numel() for p in module.parameters())
    return {"seconds": median(times), "times": times, "peak_mb": memory.extra_mib, "parameters": parameters}


def scan_backend_description(device: str) -> str:
    from nnunetv2_mamba.ops.backends import choose_backend, requested_backend
    name, reason = choose_backend(requested_backend(), torch.device(device))
    return f"{name} ({reason})"


def child_arguments(args, what: str, name: str, stage: int) -> list[str]:
    flags = ["--one", what, name, str(stage), "--device", args.device, "--patch", *map(str, args.patch),
             "--spatial-dims", str(len(args.patch)),
             "--batch", str(args.batch), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
             "--threads", str(torch.get_num_threads())]
    return flags


def seconds(result: dict | None) -> str:
    return "failed" if result is None else f"{result['seconds']:.3f}"


def ratio(result: dict | None) -> str:
    return "n/a" if result is None or result["ratio"] is None else f"{result['ratio']:.2f}x"


def megabytes(result: dict | None) -> str:
    return "failed" if result is None else f"{result['peak_mb']:.0f}"


def measure_rounds(args, what: str) -> dict:
    """{network: result or None} of ``what`` ("train" or "infer") over ``--rounds`` rounds. A round measures every
    network once, each in a fresh process, one after another (in reverse order every other round), so that a
    change of the machine's load hits all networks alike: seconds and the ratio to the baseline measured in the
    same round are medians over the rounds, the peak memory is the largest."""
    rounds = []
    for index in range(args.rounds):
        order = args.networks if index % 2 == 0 else args.networks[::-1]
        rounds.append({n: run_measurement(__file__, child_arguments(args, what, n, 0)) for n in order})
    combined = {}
    for name in args.networks:
        results = [r[name] for r in rounds if r[name] is not None]
        ratios = [r[name]["seconds"] / r[BASELINE]["seconds"] for r in rounds if r[name] and r.get(BASELINE)]
        combined[name] = None if not results else {
            "seconds": statistics.median(r["seconds"] for r in results), "parameters": results[0]["parameters"],
            "peak_mb": max(r["peak_mb"] for r in results), "ratio": statistics.median(ratios) if ratios else None}
    return combined


def network_table(args) -> str:
    train, infer = measure_rounds(args, "train"), measure_rounds(args, "infer")
    rows = [[n, f"{train[n]['parameters']:,}" if train[n] else "?", seconds(train[n]), ratio(train[n]),
             megabytes(train[n]), seconds(infer[n]), ratio(infer[n]), megabytes(infer[n])] for n in args.networks]
    headers = ["network", "parameters", f"train step (s), batch {args.batch}", f"step / {BASELINE}",
               "step peak extra MB", "inference per image (s)", f"inference / {BASELINE}", "inference peak extra MB"]
    return markdown_table(headers, rows)


def block_table(args) -> str:
    rows = []
    for stage, dim in enumerate(STAGE_DIMS):
        size = "x".join(map(str, stage_size(args.patch, stage)))
        results = [run_measurement(__file__, child_arguments(args, "block", b, stage)) for b in BLOCKS]
        rows.append([stage, dim, size, *(seconds(r) for r in results), *(megabytes(r) for r in results)])
    names = (mixer_name(args.patch), "VSSBlock")
    headers = ["stage", "dim", " x ".join("DHW"[-len(args.patch):]), *(f"{b} fwd+bwd (s)" for b in names),
               *(f"{b} peak extra MB" for b in names)]
    return markdown_table(headers, rows)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mixer_name(patch: tuple[int, ...]) -> str:
    return "SS2D" if len(patch) == 2 else "SS3D"


def profile_training_step(args) -> None:
    """Print torch.profiler's operator table (self time) for one training step after warm-up."""
    from torch.profiler import ProfilerActivity, profile
    network = build_network(args.profile, args.patch, deep_supervision=True).to(args.device)
    step = training_step(network, args.patch, args.batch, args.device, amp=False)
    for _ in range(max(1, args.warmup)):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    with profile(activities=activities) as profiler:
        step()
    sort = "self_cuda_time_total" if args.device.startswith("cuda") else "self_cpu_time_total"
    print(profiler.key_averages().table(sort_by=sort, row_limit=40))


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--patch", type=int, nargs="+", default=[128], metavar="EDGE",
                        help="patch edge (square / cube) or one edge per axis, e.g. 128 or 224 192 (default 128)")
    parser.add_argument("--spatial-dims", type=int, choices=(2, 3), default=2,
                        help="2: images (nnU-Net 2d); 3: volumes (3d_fullres, SS3D), e.g. with --patch 64")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="run N spinning Python processes beside the measurements (default 0)")
    parser.add_argument("--batch", type=int, default=2, help="training batch size (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions, median reported (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions first (default 1)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure all networks this many times in turn; medians over rounds (default 1)")
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS),
                        help=f"networks to time (default all; ratios need {BASELINE})")
    parser.add_argument("--no-blocks", action="store_true", help="skip the SS2D (SS3D) / VSS block table")
    parser.add_argument("--out", help="also write the markdown report to this file")
    parser.add_argument("--profile", choices=NETWORKS, help="only profile one training step of this network")
    parser.add_argument("--one", nargs=3, metavar=("WHAT", "NAME", "STAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if len(args.patch) not in (1, args.spatial_dims) or any(edge % 32 for edge in args.patch):
        parser.error(f"--patch takes one or {args.spatial_dims} multiples of 32 (the VSS networks' size divisor), "
                     f"got {args.patch}")
    args.patch = tuple(args.patch) * (args.spatial_dims // len(args.patch))
    return args


def main(argv=None) -> int:
    args = parse_arguments(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], int(args.one[2]), args)))
        return 0
    if args.profile:
        profile_training_step(args)
        return 0

    header = (f"{machine_description(args.device)}; selective-scan backend {scan_backend_description(args.device)}; "
              f"fp32, patch {'x'.join(map(str, args.patch))}, {args.busy} busy processes beside, "
              f"median of {args.repeats} after {args.warmup} warm-up, {args.rounds} round(s)\n")
    print(header, flush=True)
    with busy_processes(args.busy):
        networks = network_table(args)
        report = [header, networks]
        print(networks, flush=True)
        if not args.no_blocks:
            blocks = block_table(args)
            title = f"\n{mixer_name(args.patch)} / VSS block, batch {args.batch}:\n"
            print(title + "\n" + blocks, flush=True)
            report += [title, blocks]
    report.append(f"\n(load at the end: {machine_description(args.device).rsplit(', ', 1)[-1]})\n")
    if args.out:
        with open(args.out, "w") as out:
            out.write("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time forward + backward of the selective scan at SS2D shapes and print a markdown table.

Compares our pure-PyTorch chunked scan with a plain sequential per-timestep loop (autograd does its backward) and,
at L=784 only, with mamba-ssm's ``selective_scan_ref`` (quadratic backward: one repetition). On the CPU our
compiled ``cpu`` backend is added when it builds, on CUDA the compiled (mamba-ssm) and Triton backends when they
run. Each backend gets its inputs in the layout SS2D gives it (channels-last views for torch and cpu, contiguous
(B, K*D, L) for the GPU kernels); the baselines get contiguous ones. Every cell is measured in a fresh subprocess so
that its peak memory (extra RSS on CPU, max allocated on CUDA) is its own. ``--busy N`` runs N spinning Python
processes beside the measurements, as other jobs sharing the CPU would.

    python benchmarks/bench_scan.py [--device cpu] [--threads N] [--repeats 3] [--dims 96 192] [--lengths 784 3136]
                                    [--methods torch cpu] [--busy N]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

from nnunetv2_mamba.measurement import median, peak_memory, timed_runs
from nnunetv2_mamba.measurement.machine import machine_description
from processes import busy_processes

BATCH, DIRECTIONS, D_STATE = 2, 4, 16
MAMBA_REF_LENGTH = 784


def sequential_loop_scan(u, delta, A, B, C, D, delta_bias):
    """The plain baseline: one autograd step per position, (b, d, L) inputs, B/C (b, G, N, L)."""
    delta = F.softplus(delta + delta_bias[:, None])
    b, d, L = u.shape
    Bx = B.repeat_interleave(d // B.shape[1], dim=1)
    Cx = C.repeat_interleave(d // C.shape[1], dim=1)
    h = u.new_zeros(b, d, A.shape[1])
    ys = []
    for delta_t, u_t, B_t, C_t in zip(delta.unbind(-1), u.unbind(-1), Bx.unbind(-1), Cx.unbind(-1)):
        h = torch.exp(delta_t[..., None] * A) * h + (delta_t * u_t)[..., None] * B_t
        ys.append((h * C_t).sum(-1))
    return torch.stack(ys, dim=-1) + u * D[:, None]


def scan_method(name: str):
    """f(u, delta, A, B, C, D, delta_bias) -> y for a method name."""
    if name == "loop":
        return sequential_loop_scan
    if name == "mamba_ref":
        import types
        sys.modules.setdefault("selective_scan_cuda", types.ModuleType("selective_scan_cuda"))  # CPU: no kernel
        from mamba_ssm.ops.selective_scan_interface import selective_scan_ref
        return lambda u, delta, A, B, C, D, bias: selective_scan_ref(u, delta, A, B, C, D, None, bias, True)
    from nnunetv2_mamba.ops import selective_scan
    return lambda u, delta, A, B, C, D, bias: selective_scan(u, delta, A, B, C, D, None, bias, True, backend=name)


def measure_one(method: str, dim: int, length: int, repeats: int, device: str) -> dict:
    """Median fwd+bwd seconds and peak extra memory (MB) of one method at one shape, in this process."""
    from nnunetv2_mamba.ops.backends import LAYOUTS
    torch.manual_seed(0)
    d = DIRECTIONS * dim
    make = lambda *shape: torch.randn(*shape, device=device)  # noqa: E731
    if LAYOUTS.get(method) == "channels_last":  # (b, d, L) views of (b, L, d), B/C views of (b, L, G, N)
        sequences = [make(BATCH, length, d).transpose(1, 2) for _ in range(2)]
        states = [make(BATCH, length, DIRECTIONS, D_STATE).permute(0, 2, 3, 1) for _ in range(2)]
    else:
        sequences = [make(BATCH, d, length) for _ in range(2)]
        states = [make(BATCH, DIRECTIONS, D_STATE, length) for _ in range(2)]
    inputs = [sequences[0], 0.1 * sequences[1] - 4, -torch.rand(d, D_STATE, device=device), *states,
              torch.ones(d, device=device), 0.1 * make(d)]
    inputs = [t.detach().requires_grad_() for t in inputs]
    scan = scan_method(method)
    with peak_memory(device) as memory:  # untimed warm-up (loading a kernel, first allocations), not of mamba_ref
        times, _ = timed_runs(lambda: scan(*inputs).sum().backward(), device, int(method != "mamba_ref"), repeats)
    return {"seconds": median(times), "repeats": repeats, "peak_mb": memory.extra_mib}


def measure_in_subprocess(method: str, dim: int, length: int, repeats: int, device: str) -> dict | None:
    command = [sys.executable, __file__, "--one", method, str(dim), str(length), "--repeats", str(repeats),
               "--device", device, "--threads", str(torch.get_num_threads())]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        print(f"[{method} D={dim} L={length} failed: {result.stderr.strip().splitlines()[-1:]}]", file=sys.stderr)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def description(device: str) -> str:
    return f"{machine_description(device)}; fp32, B={BATCH}, K={DIRECTIONS}, N={D_STATE}, fwd+bwd, median"


def methods_for(device: str) -> list[str]:
    from nnunetv2_mamba.ops.backends import availability
    kernels = ("triton", "cuda") if device.startswith("cuda") else ("cpu",) if device == "cpu" else ()
    return ["torch", "loop"] + [name for name in kernels if availability(name).available]


def print_cells(dim: int, length: int, args) -> None:
    """Measure every method at one shape, each in its own process, and print their table rows."""
    methods = [m for m in methods_for(args.device) if not args.methods or m in args.methods]
    if length == MAMBA_REF_LENGTH and not args.skip_mamba_ref:
        methods.append("mamba_ref")
    results = {m: measure_in_subprocess(m, dim, length, 1 if m == "mamba_ref" else args.repeats, args.device)
               for m in methods}
    ours = results["torch"]["seconds"] if results.get("torch") else float("nan")
    for method, result in results.items():
        if result is None:
            print(f"| {dim} | {length} | {method} | failed | | |")
            continue
        print(f"| {dim} | {length} | {method} | {result['seconds']:.3f} | {result['seconds'] / ours:.2f}x "
              f"| {result['peak_mb']:.0f} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dims", type=int, nargs="+", default=[96, 192])
    parser.add_argument("--lengths", type=int, nargs="+", default=[784, 3136])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip-mamba-ref", action="store_true", help="skip mamba-ssm's (slow) selective_scan_ref")
    parser.add_argument("--methods", nargs="+", help="only these methods (torch, loop, cpu, triton, cuda); torch is "
                                                     "the reference of the ratios")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="run N spinning Python processes beside the measurements (default 0)")
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "DIM", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        method, dim, length = args.one[0], int(args.one[1]), int(args.one[2])
        print(json.dumps(measure_one(method, dim, length, args.repeats, args.device)))
        return 0

    print(f"{description(args.device)}; {args.busy} busy processes beside\n")
    print("| D | L | method | fwd+bwd (s) | method / torch scan | peak extra memory (MB) |")
    print("|---|---|---|---|---|---|")
    with busy_processes(args.busy):
        for dim in args.dims:
            for length in args.lengths:
                print_cells(dim, length, args)
    print(f"\n(load at the end: {os.getloadavg()[0]:.1f})" if hasattr(os, "getloadavg") else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``nnunetv2_mamba doctor``: which selective-scan backend runs here, and why the others do not."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None,
                        help="backend to check instead of $nnUNet_mamba_scan: auto, cuda, triton, cpu or torch")


def run(args: argparse.Namespace) -> int:
    import os

    import torch

    from nnunetv2_mamba.ops.backends import BACKENDS, ENV_VARIABLE, availability, choose_backend, requested_backend

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    print(f"device: {torch.cuda.get_device_name(0) if cuda else 'cpu (no CUDA device)'}")
    print(f"{ENV_VARIABLE}={os.environ.get(ENV_VARIABLE, '')!r}")
    for name in BACKENDS:
        probe = availability(name)
        print(f"  {name:7s} {'available' if probe.available else 'unavailable'}: {probe.reason}")
    try:
        name, reason = choose_backend(requested_backend(args.backend), device)
    except (ValueError, RuntimeError) as error:
        print(f"chosen on {device.type}: none. {error}")
        return 1
    print(f"chosen on {device.type}: {name} ({reason})")
    return 0

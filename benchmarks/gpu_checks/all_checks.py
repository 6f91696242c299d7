"""Importing this registers every check, in the order of the report (a new check module is one more import)."""
from gpu_checks import environment, scan, cross_scan, ss2d, nets  # noqa: F401  (registration by import)
from gpu_checks import triton_backward, compiled, ddp  # noqa: F401
from gpu_checks.registry import CHECKS

__all__ = ["CHECKS"]

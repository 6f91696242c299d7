"""What nnU-Net's trainer search imports (through the one-line shim modules): every trainer, or nothing.

nnU-Net aborts its whole external-trainer search on any import error other than the scanned module's own
ModuleNotFoundError, so a broken install must not raise here: it is reported on stderr instead.
"""
import sys

try:
    from nnunetv2_mamba.training.trainers import *  # noqa: F401,F403
    from nnunetv2_mamba.training.trainers import __all__  # noqa: F401
except Exception as error:  # noqa: BLE001 - any failure must leave nnU-Net's search running
    __all__ = []
    print(f"nnunetv2_mamba: its trainers are unavailable because importing them failed: {error!r}. "
          f"Run `nnunetv2_mamba doctor` for details.", file=sys.stderr)

"""What nnU-Net's trainer search imports (through the one-line shim modules in ``trainers/``): every trainer, or
nothing, and the variants ``<Trainer>_<NoScan|OneWay>``, ``<Trainer>_<E>ep<I>it``, ``<Trainer>_seed<K>`` of any
trainer, synthesised when nnU-Net asks for one (PEP 562, :mod:`.trainer_variants`).

``__all__`` lists ``__getattr__`` too, so that a shim's ``from nnunetv2_mamba.training.trainer_exports import *``
gives the shim module the same name resolution. nnU-Net aborts its whole external-trainer search on any import
error other than the scanned module's own ModuleNotFoundError, so a broken install must not raise here: it is
reported on stderr instead.
"""
import sys

try:
    from nnunetv2_mamba.training.trainers import *  # noqa: F401,F403
    from nnunetv2_mamba.training.trainers import __all__ as trainer_names
    from nnunetv2_mamba.training.trainer_variants import trainer_variant
except Exception as error:  # noqa: BLE001 - any failure must leave nnU-Net's search running
    trainer_names, trainer_variant = [], None
    print(f"nnunetv2_mamba: its trainers are unavailable because importing them failed: {error!r}. "
          f"Run `nnunetv2_mamba doctor` for details.", file=sys.stderr)

__all__ = [*trainer_names, "__getattr__"]


def __getattr__(name: str) -> type:
    """A trainer variant name: its class (see nnunetv2_mamba.training.trainer_variants); AttributeError for any
    other name, so that nnU-Net's search goes on to its other folders."""
    if trainer_variant is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r} (its trainers failed to import)")
    return trainer_variant(name)

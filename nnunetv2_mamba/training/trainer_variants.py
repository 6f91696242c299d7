"""Finds a trainer by name, and synthesises the variants its name asks for (docs/training.md, "Trainer names").

A run's identity is its trainer's name, written ``<Trainer>[_<Control>][_<E>ep<I>it][_seed<K>]`` in that order:

- ``_NoScan`` / ``_OneWay``: the scan controls of a Mamba trainer (nets/scan_variants.py), everything else as
  ``<Trainer>``;
- ``_<E>ep<I>it``: the training budget (:mod:`.budget`), of any trainer nnU-Net finds;
- ``_seed<K>``: the seed (:mod:`.seeds`), of any trainer nnU-Net finds.

Each name has one spelling, so each run one results folder: suffixes in another order, twice, or malformed are one
``TrainerNameError`` saying what to type. The base of a variant is our trainer of that name, the variant of a
shorter name (a seed on a budget variant), else whatever nnU-Net's own search finds (its trainers, then
``nnUNet_extTrainer``'s folders). A synthesised class adds the machinery our trainers share
(``NonFiniteLossGuard``, ``SafeCheckpoints``, ``CompileOnRequest``) where the base lacks it. nnU-Net finds these
classes through :mod:`.trainer_exports`, the module its search imports.
"""
from __future__ import annotations

from typing import Callable

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mamba.nets.scan_variants import NO_SCAN, ONE_WAY
from nnunetv2_mamba.training import trainers
from nnunetv2_mamba.training.base import CompileOnRequest, VSSUNetTrainerBase
from nnunetv2_mamba.training.budget import TrainerNameError, TrainingBudget, split_budget_name
from nnunetv2_mamba.training.checkpoints import SafeCheckpoints
from nnunetv2_mamba.training.nonfinite import NonFiniteLossGuard
from nnunetv2_mamba.training.seeds import SeededTraining, split_seed_name

#: the module whose PEP 562 ``__getattr__`` resolves variant names: synthesised classes say they live there, so
#: that pickle (by module and name) finds them again in a fresh process
RESOLVING_MODULE = "nnunetv2_mamba.training.trainer_exports"
#: the scan controls: {name suffix: the networks' ``scan``}
CONTROLS = {"NoScan": NO_SCAN, "OneWay": ONE_WAY}


def split_control_name(name: str) -> tuple[str, str] | None:
    """(base trainer name, control) of ``<base>_NoScan`` / ``<base>_OneWay``; None for any other name."""
    for control in CONTROLS:
        if name.endswith("_" + control) and len(name) > len(control) + 1:
            return name[:-len(control) - 1], control
    return None


#: the suffixes in the order they are written, each with its parser: (base, value) or None
SUFFIXES: list[tuple[str, Callable]] = [("scan control", split_control_name), ("budget", split_budget_name),
                                        ("seed", split_seed_name)]


def split_variant_name(name: str) -> tuple[str, str, object] | None:
    """(kind, base name, value) of a variant name (its last suffix); None for a name without a variant suffix.
    ``TrainerNameError`` when the suffixes are malformed, repeated or out of order."""
    for position, (kind, split) in enumerate(SUFFIXES):
        found = split(name)
        if found is None:
            continue
        base = found[0]
        for inner_position, (inner_kind, inner_split) in enumerate(SUFFIXES):
            inner = inner_split(base) if inner_position >= position else None
            if inner is None:
                continue
            suffix, inner_suffix = name[len(base):], base[len(inner[0]):]
            if inner_position == position:
                raise TrainerNameError(f"{name} has two {kind} suffixes; name one, e.g. {inner[0] + suffix}.")
            raise TrainerNameError(f"{name}: write the suffixes in the order <Trainer>_<NoScan|OneWay>_<E>ep<I>it_"
                                   f"seed<K>, here {inner[0] + suffix + inner_suffix}.")
        return kind, base, found[1]
    return None


def find_trainer(base_name: str, requested: str, kind: str) -> type:
    """Trainer class ``base_name``: ours, a variant of a shorter name, else nnU-Net's search (its own trainers, then
    nnUNet_extTrainer)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    if base_name in trainers.__all__:
        return getattr(trainers, base_name)
    if split_variant_name(base_name) is not None:
        return trainer_variant(base_name)
    try:
        return recursive_find_trainer_class_by_name(base_name)
    except RuntimeError as error:
        raise TrainerNameError(f"{requested} is trainer {base_name} with a {kind}, but {base_name} was not found: "
                               f"{error}") from None


def shared_mixins(base: type) -> list[type]:
    """The machinery our trainers share that ``base`` lacks."""
    mixins = []
    if not issubclass(base, NonFiniteLossGuard) and base.train_step is nnUNetTrainer.train_step:
        mixins.append(NonFiniteLossGuard)  # a base with its own train_step keeps it: training_setup says so
    return mixins + [m for m in (SafeCheckpoints, CompileOnRequest) if not issubclass(base, m)]


def _synthesise(name: str, kind: str, base: type, value) -> type:
    attributes = {"__module__": RESOLVING_MODULE, "__qualname__": name}
    if kind == "scan control":
        if not issubclass(base, VSSUNetTrainerBase):
            raise TrainerNameError(f"{name}: {value} replaces the selective scan of a Mamba-UNet or VM-UNet trainer, "
                                   f"and {base.__name__} trains no such network.")
        attributes["fixed_network_kwargs"] = {**base.fixed_network_kwargs, "scan": CONTROLS[value]}
        return type(name, (base,), {**attributes, "__doc__": f"{base.__name__} with the scan control {value} "
                                                             f"(scan={CONTROLS[value]!r})."})
    if kind == "budget":
        mixins = [] if issubclass(base, TrainingBudget) else [TrainingBudget]
        attributes.update(budget=value, __doc__=f"{base.__name__} trained for {value}.")
    else:
        mixins = [SeededTraining]
        attributes.update(seed=value, __doc__=f"{base.__name__} with seed {value}.")
    return type(name, (*mixins, *shared_mixins(base), base), attributes)


_variants: dict[str, type] = {}


def trainer_variant(name: str) -> type:
    """The class a variant name asks for, synthesised once per process. AttributeError for a name without a variant
    suffix (so that nnU-Net's search goes on); ``TrainerNameError`` for a malformed name or a base that does not
    exist. The base's name is shorter and badly ordered or repeated suffixes are refused before any search, so
    looking up the base never comes back to the same name: the recursion ends."""
    if name not in _variants:
        split = split_variant_name(name)
        if split is None:
            raise AttributeError(f"{name} is not a trainer variant name (<Trainer>_<NoScan|OneWay>, "
                                 f"<Trainer>_<E>ep<I>it, <Trainer>_seed<K>)")
        kind, base_name, value = split
        _variants[name] = _synthesise(name, kind, find_trainer(base_name, name, kind), value)
    return _variants[name]


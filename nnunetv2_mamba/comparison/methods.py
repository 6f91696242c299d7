"""What a benchmark compares: a trainer on a plans file and a configuration, named as nnU-Net names results folders.

``Model`` is a compared model as nnU-Net knows it, (trainer with its budget, plans, configuration): its identifier,
results folder and the nnU-Net commands that train, validate, predict with and export it; the one place that builds
or parses nnU-Net's ``TRAINER__PLANS__CONFIG`` identifier (with nnU-Net's own helpers), and that reads nnU-Net's
ensemble keys made of them (``ensemble_members``). ``Method`` is what the user names, before a budget is given to
its trainer.

``TRAINER`` means ``TRAINER__nnUNetPlans__<-c>``, ``TRAINER__PLANS`` the benchmark's configuration in those plans,
``TRAINER__PLANS__CONFIG`` exactly that (nnU-Net's ``TRAINER__PLANS__CONFIG`` results-folder identifier). The
budget and the seed are not part of a method: each run trains the method's trainer as ``<TRAINER>_<E>ep<I>it``, a
seeded repeat as ``<TRAINER>_<E>ep<I>it_seed<K>`` (``run_trainer_name``). A Mamba method's scan controls are methods
of their own on its plans (``Method.control``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

STOCK_PLANS = "nnUNetPlans"
#: nnU-Net's residual-encoder presets: {preset: (plans identifier, planner class, VRAM in GB it plans for)}
RESENC_PRESETS = {"M": ("nnUNetResEncUNetMPlans", "nnUNetPlannerResEncM", 8),
                  "L": ("nnUNetResEncUNetLPlans", "nnUNetPlannerResEncL", 24),
                  "XL": ("nnUNetResEncUNetXLPlans", "nnUNetPlannerResEncXL", 40)}
#: our networks' trainers and the plans our planners write for them
MAMBA_PLANS = {"nnUNetTrainerMambaUNet": "nnUNetMambaUNetPlans", "nnUNetTrainerVMUNet": "nnUNetVMUNetPlans"}
#: a configuration ``<base>_bs<N>``: ``base`` at batch size N, derived in the plans with ``inherits_from``
DERIVED_BATCH = re.compile(r"^(?P<base>\w+?)_bs(?P<batch>[1-9]\d*)$")
IDENTIFIER_PART = re.compile(r"^\w+$")
SEPARATOR = "__"  # of a method spec's parts, as in nnU-Net's identifier
#: the forms of a method spec, as help texts and errors name them
SPEC_FORMS = "TRAINER, TRAINER__PLANS or TRAINER__PLANS__CONFIG"
#: our networks' methods as specs, each trainer on its own plans
MAMBA_SPECS = [SEPARATOR.join(trainer_plans) for trainer_plans in MAMBA_PLANS.items()]
#: nnU-Net's selection key of an ensemble: ``ensemble___<identifier>___<identifier>___<folds>``
ENSEMBLE_PREFIX = "ensemble___"


@dataclass(frozen=True)
class Model:
    """A trained or to-be-trained model: ``trainer`` (its budget in its name), ``plans``, ``configuration``."""
    trainer: str
    plans: str
    configuration: str

    @classmethod
    def from_identifier(cls, identifier: str) -> "Model":
        """The model of nnU-Net's ``TRAINER__PLANS__CONFIG`` (a results folder's name); ValueError otherwise."""
        from nnunetv2.utilities.file_path_utilities import convert_identifier_to_trainer_plans_config

        parts = convert_identifier_to_trainer_plans_config(identifier)
        if len(parts) != 3:
            raise ValueError(f"{identifier!r} is not nnU-Net's TRAINER__PLANS__CONFIG")
        return cls(*parts)

    @property
    def identifier(self) -> str:
        """nnU-Net's ``TRAINER__PLANS__CONFIG``: the results folder's name."""
        from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier

        return convert_trainer_plans_config_to_identifier(self.trainer, self.plans, self.configuration)

    def folder(self, results_root: Path, dataset: str) -> Path:
        return Path(results_root) / dataset / self.identifier

    def train_command(self, dataset_id: int, fold: int, device: str, npz: bool = False,
                      resume: bool = False) -> list[str]:
        """``nnUNetv2_train`` of ``fold`` on ``device`` (nnU-Net's ``-device``), with ``--npz`` probabilities for
        ensembling; ``resume``: ``--c``, from the fold's latest checkpoint."""
        return self._train(dataset_id, fold, device, npz) + (["--c"] if resume else [])

    def validate_command(self, dataset_id: int, fold: int, device: str, npz: bool = False) -> list[str]:
        """``nnUNetv2_train --val`` of a trained ``fold``: its validation again (with ``--npz``), never a retraining."""
        return self._train(dataset_id, fold, device, npz) + ["--val"]

    def _train(self, dataset_id: int, fold: int, device: str, npz: bool) -> list[str]:
        from nnunetv2_mamba.comparison.workspace import nnunet_command

        return [nnunet_command("nnUNetv2_train"), str(dataset_id), self.configuration, str(fold), "-tr", self.trainer,
                "-p", self.plans, "-device", device] + (["--npz"] if npz else [])

    def predict_command(self, dataset_id: int, folds: list, input_dir: Path, output_dir: Path, device: str,
                        probabilities: bool = False, disable_tta: bool = False) -> list[str]:
        """``nnUNetv2_predict`` of ``input_dir`` into ``output_dir`` with ``folds`` of this model, one process each
        for preprocessing and export; ``probabilities`` for ensembling, ``disable_tta``: no mirroring."""
        from nnunetv2_mamba.comparison.workspace import nnunet_command

        return [nnunet_command("nnUNetv2_predict"), "-i", str(input_dir), "-o", str(output_dir), "-d", str(dataset_id),
                "-c", self.configuration, "-tr", self.trainer, "-p", self.plans, "-f", *map(str, folds),
                "-device", device, "-npp", "1", "-nps", "1", *(["--save_probabilities"] if probabilities else []),
                *(["--disable_tta"] if disable_tta else [])]

    def export_command(self, dataset_id: int, folds: list, zip_file: Path) -> list[str]:
        """``nnUNetv2_export_model_to_zip`` of ``folds`` of this model into ``zip_file``."""
        from nnunetv2_mamba.comparison.workspace import nnunet_command

        return [nnunet_command("nnUNetv2_export_model_to_zip"), "-d", str(dataset_id), "-o", str(zip_file),
                "-c", self.configuration, "-tr", self.trainer, "-p", self.plans, "-f", *map(str, folds)]


def ensemble_members(key: str) -> list[Model]:
    """The models of nnU-Net's ensemble ``key`` in its selection (read by nnU-Net's own helper); [] for the
    identifier of a single model."""
    from nnunetv2.utilities.file_path_utilities import convert_ensemble_folder_to_model_identifiers_and_folds

    if not key.startswith(ENSEMBLE_PREFIX):
        return []
    return [Model.from_identifier(i) for i in convert_ensemble_folder_to_model_identifiers_and_folds(key)[0]]


class MethodError(ValueError):
    """A method spec that cannot name a run; the message says what to type instead."""


@dataclass(frozen=True)
class Method:
    """One compared model: ``trainer`` (without budget) on ``plans`` and ``configuration``."""
    trainer: str
    plans: str = STOCK_PLANS
    configuration: str = "2d"

    @classmethod
    def parse(cls, spec: str, configuration: str) -> "Method":
        """``TRAINER``, ``TRAINER__PLANS`` or ``TRAINER__PLANS__CONFIG``; ``configuration`` where the spec has none."""
        parts = spec.split(SEPARATOR)
        if len(parts) > 3 or not all(IDENTIFIER_PART.match(p) for p in parts):
            raise MethodError(f"{spec!r}: give {SPEC_FORMS} (nnU-Net's results folder name, e.g. "
                              "nnUNetTrainer__nnUNetResEncUNetMPlans__2d), letters, digits and single underscores "
                              "inside each part.")
        return cls(parts[0], *(parts[1:] + [STOCK_PLANS, configuration][len(parts) - 1:]))

    def name(self, configuration: str) -> str:
        """How a benchmark of ``configuration`` names it: the shortest spec that ``parse`` reads back to it."""
        if self.configuration != configuration:
            return self.model(self.trainer).identifier
        return self.trainer if self.plans == STOCK_PLANS else SEPARATOR.join((self.trainer, self.plans))

    @property
    def base_configuration(self) -> str:
        """The configuration a derived ``<base>_bs<N>`` inherits from; the configuration itself otherwise."""
        derived = DERIVED_BATCH.match(self.configuration)
        return derived["base"] if derived else self.configuration

    @property
    def derived_batch_size(self) -> int | None:
        derived = DERIVED_BATCH.match(self.configuration)
        return int(derived["batch"]) if derived else None

    def model(self, trainer: str) -> Model:
        """This method trained as ``trainer`` (its trainer with a budget)."""
        return Model(trainer, self.plans, self.configuration)

    def folder_name(self, trainer: str) -> str:
        """nnU-Net's results folder of ``trainer`` (this method's trainer with a budget) on these plans."""
        return self.model(trainer).identifier

    @property
    def is_ours(self) -> bool:
        """A Mamba-UNet / VM-UNet trainer (any recipe, control, budget or seed variant of ours)."""
        return any(self.trainer == t or self.trainer.startswith(t + "_") for t in MAMBA_PLANS)

    @property
    def scan_control(self) -> str | None:
        """The scan control in the trainer's name (``NoScan``, ``OneWay``), None for a trainer without one."""
        return variant_suffixes(self.trainer)[1].get(CONTROL, "").removeprefix("_") or None

    @property
    def has_scan(self) -> bool:
        """One of our networks with its selective scan: a method whose scan controls can be trained."""
        return self.is_ours and self.scan_control is None

    def control(self, control: str | None) -> "Method":
        """This method with the scan ``control`` (``NoScan``, ``OneWay``) on the same plans and configuration; a
        budget or seed in the trainer's name stays, after the control as variant names are written."""
        core, suffixes = variant_suffixes(self.trainer)
        return Method(_joined(core, {**suffixes, CONTROL: f"_{control}" if control else ""}), self.plans,
                      self.configuration)

    def parent(self) -> "Method":
        """The method a scan control controls: this one without its control."""
        return self.control(None)


CONTROL, BUDGET, SEED = "scan control", "budget", "seed"  # the kinds of trainer_variants.split_variant_name


def variant_suffixes(trainer: str) -> tuple[str, dict[str, str]]:
    """(trainer without variant suffixes, {kind: its suffix as written}); ``TrainerNameError`` for a malformed,
    repeated or misordered suffix (a seed that is not a number, say)."""
    from nnunetv2_mamba.training.trainer_variants import split_variant_name

    suffixes, name = {}, trainer
    while (split := split_variant_name(name)) is not None:
        kind, base, _ = split
        suffixes[kind] = name[len(base):]
        name = base
    return name, suffixes


def _joined(core: str, suffixes: dict[str, str]) -> str:
    return core + "".join(suffixes.get(kind, "") for kind in (CONTROL, BUDGET, SEED))


def run_trainer_name(trainer: str, epochs: int, iterations_per_epoch: int, seed: int | None) -> str:
    """The trainer a run trains: ``trainer`` with the budget ``epochs`` x ``iterations_per_epoch`` unless its name
    has one, and ``_seed<seed>`` (None: no seed suffix; a trainer whose name has a seed keeps it then)."""
    from nnunetv2_mamba.training.budget import Budget
    from nnunetv2_mamba.training.seeds import SeedNameError, seed_trainer_name

    core, suffixes = variant_suffixes(trainer)
    if seed is not None and SEED in suffixes:
        raise SeedNameError(f"{trainer} has a seed in its name and --repeats names the seeds; give the trainer "
                            f"without it, {_joined(core, {**suffixes, SEED: ''})}.")
    name = _joined(core, {BUDGET: Budget.of(epochs, iterations_per_epoch).suffix, **suffixes})
    return name if seed is None else seed_trainer_name(name, seed)


def default_methods(configuration: str, preset: str, baseline_batch_size: int | None) -> list[Method]:
    """nnU-Net's recommended comparison: its CNN on nnUNetPlans, the ResEnc ``preset`` (at ``baseline_batch_size``
    through a derived configuration when given) and both Mamba networks on their own plans."""
    if preset not in RESENC_PRESETS:
        raise MethodError(f"unknown ResEnc preset {preset!r}; choose one of {', '.join(RESENC_PRESETS)} "
                          "(nnU-Net's nnUNetResEncUNet{M,L,XL}Plans).")
    resenc_configuration = (configuration if baseline_batch_size is None
                            else f"{configuration}_bs{baseline_batch_size}")
    return [Method("nnUNetTrainer", STOCK_PLANS, configuration),
            Method("nnUNetTrainer", RESENC_PRESETS[preset][0], resenc_configuration),
            *(Method(trainer, plans, configuration) for trainer, plans in MAMBA_PLANS.items())]

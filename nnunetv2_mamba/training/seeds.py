"""A seed as part of a trainer's name: ``<Trainer>_seed<K>`` is ``<Trainer>`` with every random draw of its training
seeded from K (docs/training.md, "Seeded repeats").

The seed is the last suffix (``nnUNetTrainerMambaUNet_2ep4it_seed1``): the class is synthesised on demand like the
budget variants (:mod:`nnunetv2_mamba.training.trainer_variants`), so each seed trains into its own results folder.
``SeededTraining`` seeds Python's ``random``, numpy and torch before the network is built (its initialisation),
again before the data loaders start (the in-process augmentation), and nnU-Net's augmentation worker processes
through their augmenter's own ``seeds``; it asks torch for deterministic algorithms and records K in
``training_setup.json``.
"""
from __future__ import annotations

import os
import random
import re

import numpy as np
import torch
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter

from nnunetv2_mamba.training.budget import RecordsTrainingSetup, TrainerNameError

SEED_NAME = re.compile(r"^(?P<base>\w+?)_seed(?P<seed>[^_]*)$")
#: the data streams seeded apart: the trainer's own process, then each augmenter's workers
TRAINING_WORKERS, VALIDATION_WORKERS = 1, 2


class SeedNameError(TrainerNameError):
    """A ``<Trainer>_seed<K>`` name whose K is not a seed; the message says what to type instead."""


def split_seed_name(name: str) -> tuple[str, int] | None:
    """(base trainer name, seed) of ``<base>_seed<K>``; None for any other name. One ``SeedNameError`` for a K that
    is not a non-negative integer written without leading zeros (each seed has one name, hence one results
    folder)."""
    found = SEED_NAME.match(name)
    if found is None:
        return None
    base, digits = found["base"], found["seed"]
    if not digits.isdecimal() or not digits.isascii():
        raise SeedNameError(f"{name}: the seed suffix _seed{digits} is not a number; name the seed as an integer "
                            f"K >= 0, e.g. {base}_seed1.")
    if str(int(digits)) != digits:
        raise SeedNameError(f"{name}: write the seed without leading zeros, {base}_seed{int(digits)}.")
    return base, int(digits)


def seed_trainer_name(trainer: str, seed: int) -> str:
    """``<trainer>_seed<K>``: the name under which nnU-Net trains ``trainer`` with seed K."""
    if not isinstance(seed, int) or seed < 0:
        raise SeedNameError(f"seed {seed!r}: a seed is an integer >= 0.")
    if split_seed_name(trainer) is not None:
        raise SeedNameError(f"{trainer} has a seed in its name already; give the trainer without it, "
                            f"{split_seed_name(trainer)[0]}.")
    return f"{trainer}_seed{seed}"


def derived_seeds(*key: int, count: int = 1) -> list[int]:
    """``count`` independent 32-bit seeds for the stream named by ``key`` (numpy's ``SeedSequence``)."""
    return [int(s) for s in np.random.SeedSequence(list(key)).generate_state(count)]


def seed_generators(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch's (CPU and every GPU) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def use_deterministic_algorithms(device: torch.device) -> None:
    """torch's deterministic implementations wherever it has them (a warning, not an error, for an operation
    without one); on CUDA also cuDNN's deterministic convolutions without autotuning and cuBLAS's fixed workspace."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


class SeededTraining(RecordsTrainingSetup):
    """Mixin for nnU-Net trainers: the class attribute ``seed`` seeds the network's initialisation, the data
    loading and augmentation (in process and in nnU-Net's worker processes) and the training steps; the setup,
    with the seed, is recorded.

    Streams are derived from (seed, DDP rank, epoch at start) so that the ranks draw different batches and a
    ``--c`` resume does not replay the first epochs' augmentation (its in-process generators come back from the
    checkpoint: ``SafeCheckpoints``).
    """

    seed: int

    def initialize(self):
        if not self.was_initialized:
            seed_generators(self.seed)
            use_deterministic_algorithms(self.device)
            self.print_to_log_file(f"Seed {self.seed}: network initialisation, data augmentation and training steps "
                                   "seeded; deterministic algorithms requested")
        super().initialize()

    def on_train_start(self):
        use_deterministic_algorithms(self.device)  # nnUNetv2_train turned cuDNN's autotuning on after initialize
        super().on_train_start()

    def get_dataloaders(self):
        seed_generators(derived_seeds(self.seed, self.local_rank, self.current_epoch)[0])
        loaders = super().get_dataloaders()
        for stream, augmenter in zip((TRAINING_WORKERS, VALIDATION_WORKERS), loaders):
            if isinstance(augmenter, NonDetMultiThreadedAugmenter):
                # nnU-Net started the workers unseeded; restart them with seeds of their own
                augmenter.seeds = derived_seeds(self.seed, self.local_rank, self.current_epoch, stream,
                                                count=augmenter.num_processes)
                augmenter.restart()
        return loaders

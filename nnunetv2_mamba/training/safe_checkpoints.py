"""Trainer mixin: checkpoints written atomically, with the random states, and checked with ``weights_only=True``
before nnU-Net loads them; a damaged file, or one of another network (checked by the network's own
``load_state_dict``), gets one clear error naming the fix."""
from __future__ import annotations

import os
import random
from typing import Union

import numpy as np
import torch

from nnunetv2_mamba.checkpoints import CheckpointError, read_training_checkpoint, save_atomically

RANDOM_STATES_KEY = "random_states"


def capture_random_states() -> dict:
    """The global generators nnU-Net's data loading, augmentation and dropout draw from, as plain data."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {"python": random.getstate(), "torch": torch.get_rng_state(),
              "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian)}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    kind, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class SafeCheckpoints:
    """``save_checkpoint`` writes ``<name>.partial`` and renames it, so a training killed while saving keeps its
    previous checkpoint, and adds the global random states (python, numpy, torch, CUDA), which ``--c`` restores
    once the data loaders are built: with single-process data loading (``nnUNet_n_proc_DA=0``) a resumed
    training then draws the batches an uninterrupted one would. ``load_checkpoint`` (``--c``, ``--val``) first
    reads the file with ``weights_only=True``: nnU-Net 2.8.1 then unpickles it with ``weights_only=False`` (and
    cannot be handed the dict instead), which runs nothing beyond the data the safe read has just accepted."""

    def save_checkpoint(self, filename: str) -> None:
        save_atomically(self._save_with_random_states, filename)

    def _save_with_random_states(self, filename: str) -> None:
        super().save_checkpoint(filename)
        if os.path.isfile(filename):  # nnU-Net writes nothing on ranks > 0 or with checkpointing disabled
            checkpoint = read_training_checkpoint(filename)
            checkpoint[RANDOM_STATES_KEY] = capture_random_states()
            torch.save(checkpoint, filename)

    def load_checkpoint(self, filename_or_checkpoint: Union[dict, str]) -> None:
        checkpoint, source = filename_or_checkpoint, "the checkpoint"
        if isinstance(checkpoint, str):
            checkpoint, source = read_training_checkpoint(filename_or_checkpoint), filename_or_checkpoint
        try:
            super().load_checkpoint(filename_or_checkpoint)
        except CheckpointError as err:
            raise CheckpointError(f"{source} (written by trainer {checkpoint.get('trainer_name')}, this is "
                                  f"{type(self).__name__}): {err}") from None
        self.random_states_to_restore = checkpoint.get(RANDOM_STATES_KEY)

    def on_train_start(self):
        super().on_train_start()
        if getattr(self, "random_states_to_restore", None):
            restore_random_states(self.random_states_to_restore)
            self.print_to_log_file(f"random states restored from the checkpoint of epoch {self.current_epoch}")


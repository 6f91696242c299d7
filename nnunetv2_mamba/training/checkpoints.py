"""Training checkpoints, the one place they are read and written: read with ``weights_only=True``, written
atomically with the random states, and one clear error for a damaged file or weights that do not fit.

``SafeCheckpoints`` is the trainer mixin; ``read_training_checkpoint`` is what everything else (the comparison
harness, the tests) uses to read a checkpoint nnU-Net wrote.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Union

import numpy as np
import torch

from nnunetv2_mamba.nets.state_dict import IncompatibleWeightsError

RANDOM_STATES_KEY = "random_states"

# What nnU-Net 2.8.1 pickles besides tensors and builtins: numpy scalars in its logger and ``_best_ema``.
NUMPY_SCALAR_GLOBALS = [np.float64(0).__reduce__()[0], np.dtype] + sorted(  # [0]: numpy's `scalar`, 1.x and 2.x
    {type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32, np.bool_)}, key=str)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used for this training; the message says what to do."""


def read_training_checkpoint(path, map_location="cpu") -> dict:
    """An nnU-Net training checkpoint (a dict with ``network_weights``), unpickled with ``weights_only=True``."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(NUMPY_SCALAR_GLOBALS):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(err).__name__}: {str(err).strip().splitlines()[0][:200]}): it "
            f"is truncated or damaged (e.g. the training was killed while saving it). Delete it and continue with "
            f"--c from another checkpoint in {path.parent} (checkpoint_latest.pth/checkpoint_best.pth), or retrain."
        ) from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("network_weights"), dict):
        raise CheckpointError(f"{path} is not an nnU-Net training checkpoint (no 'network_weights' dict); "
                              f"pass a checkpoint_*.pth written by nnUNetv2_train.")
    return checkpoint


def save_atomically(save, filename) -> None:
    """Run ``save(temporary_name)`` then rename onto ``filename``: a kill while saving never leaves half a file."""
    temporary = f"{filename}.partial"
    save(temporary)
    if os.path.isfile(temporary):  # nnU-Net writes nothing on ranks > 0 or with checkpointing disabled
        os.replace(temporary, filename)


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
    """Trainer mixin. ``save_checkpoint`` writes ``<name>.partial`` and renames it, so a training killed while
    saving keeps its previous checkpoint, and adds the global random states (python, numpy, torch, CUDA), which
    ``--c`` restores once the data loaders are built: with single-process data loading (``nnUNet_n_proc_DA=0``) a
    resumed training then draws the batches an uninterrupted one would. ``load_checkpoint`` (``--c``, ``--val``)
    first reads the file with ``weights_only=True``: nnU-Net 2.8.1 then unpickles it with ``weights_only=False``
    (and cannot be handed the dict instead), which runs nothing beyond the data the safe read has just accepted.
    Weights of another network get the network's own error, prefixed with which trainer wrote them."""

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
        except IncompatibleWeightsError as err:
            raise CheckpointError(f"{source} (written by trainer {checkpoint.get('trainer_name')}, this is "
                                  f"{type(self).__name__}): {err}") from None
        self.random_states_to_restore = checkpoint.get(RANDOM_STATES_KEY)

    def on_train_start(self):
        super().on_train_start()
        if getattr(self, "random_states_to_restore", None):
            restore_random_states(self.random_states_to_restore)
            self.print_to_log_file(f"random states restored from the checkpoint of epoch {self.current_epoch}")

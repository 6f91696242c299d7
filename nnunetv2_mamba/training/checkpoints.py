"""Training checkpoints, the one place they are read and written: read with ``weights_only=True``, written
atomically with the random states, and one clear error for a damaged file or weights that do not fit.

``SafeCheckpoints`` is the trainer mixin; ``read_training_checkpoint`` is what everything else (the comparison
harness, the tests) uses to read a checkpoint nnU-Net wrote.
"""
from __future__ import annotations

import hashlib
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
    temporary = partial_name(filename)
    save(temporary)
    os.replace(temporary, filename)


def partial_name(filename) -> str:
    """Where ``save_atomically`` writes ``filename`` before renaming it."""
    return f"{filename}.partial"


def capture_random_states() -> dict:
    """The global generators nnU-Net's data loading, augmentation and dropout draw from, as plain data."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {"python": random.getstate(), "torch": torch.get_rng_state(),
              "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian)}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict, rank: int) -> list[str]:
    """Set the global generators from ``states`` (``capture_random_states`` on rank 0); returns what was not
    restored as it was saved, one line each for the log.

    Rank 0 (and a single-process training) continues exactly where the checkpoint left off: python's, numpy's and
    torch's CPU generator, and the CUDA generator of each GPU index both saved and visible now. CUDA states saved
    for more GPUs than are visible are dropped, GPUs beyond the saved ones keep their seeds; both are said.
    A DDP rank r > 0 must not draw rank 0's stream (every rank would augment the same way), and its own states
    were never saved (only rank 0 writes checkpoints), so it seeds all its generators (torch's seeds every CUDA
    device) from ``rank_seed(states, r)``: a stream of its own, the same on every resume of that checkpoint.
    """
    if rank > 0:
        seed = rank_seed(states, rank)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        return [f"rank {rank}: random generators seeded with {seed}, derived from the checkpoint's states and the "
                f"rank, so that this rank draws its own batches"]
    kind, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    saved = list(states.get("cuda", []))
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for device, state in enumerate(saved[:visible]):
        torch.cuda.set_rng_state(state, device)
    if len(saved) > visible:
        return [f"CUDA random states of GPUs {visible}..{len(saved) - 1} not restored: the checkpoint has those of "
                f"{len(saved)} GPU(s), {visible} visible now"]
    if visible > len(saved):
        return [f"CUDA random generators of GPUs {len(saved)}..{visible - 1} keep their seeds: the checkpoint has "
                f"the states of {len(saved)} GPU(s), {visible} visible now"]
    return []


def rank_seed(states: dict, rank: int) -> int:
    """A 32-bit seed for ``rank``, derived from the saved numpy and torch states: deterministic per checkpoint and
    rank, different between ranks."""
    keys, position = states["numpy"][1], states["numpy"][2]
    digest = hashlib.sha256(keys.numpy().tobytes() + states["torch"].numpy().tobytes()
                            + f"{position}/{rank}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class SafeCheckpoints:
    """Trainer mixin. Checkpoints are rank 0's work alone, as in nnU-Net: other DDP ranks return at once and never
    touch its files. ``save_checkpoint`` first removes a ``<name>.partial`` a killed save left behind (so a stale
    one is never renamed into place, with ``--disable_checkpointing`` neither), then writes ``<name>.partial`` and
    renames it, so a training killed while saving keeps its previous checkpoint, and adds rank 0's global random
    states (python, numpy, torch, CUDA), which ``--c`` restores once the data loaders are built
    (``restore_random_states``: rank 0 exactly, with the CUDA states of the GPUs visible now; ranks > 0 a stream
    of their own derived from them): with single-process data loading (``nnUNet_n_proc_DA=0``) a resumed
    single-GPU training then draws the batches an uninterrupted one would. ``load_checkpoint`` (``--c``, ``--val``)
    first reads the file with ``weights_only=True``: nnU-Net 2.8.1 then unpickles it with ``weights_only=False``
    (and cannot be handed the dict instead), which runs nothing beyond the data the safe read has just accepted.
    Weights of another network get the network's own error, prefixed with which trainer wrote them."""

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0:
            return
        if os.path.isfile(partial_name(filename)):
            os.remove(partial_name(filename))
        if self.disable_checkpointing:
            super().save_checkpoint(filename)  # nnU-Net's: logs that no checkpoint is written
            return
        save_atomically(self._save_with_random_states, filename)

    def _save_with_random_states(self, filename: str) -> None:
        super().save_checkpoint(filename)
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
            for note in restore_random_states(self.random_states_to_restore, self.local_rank):
                self.print_to_log_file(note)
            others = " (rank 0's; the other ranks seed theirs from them and their rank)" if self.is_ddp else ""
            self.print_to_log_file(f"random states restored from the checkpoint of epoch {self.current_epoch}"
                                   f"{others}")

"""Training checkpoints: read safely (``weights_only=True``), write atomically, and one clear error for a file that
is damaged, or holds weights of another network or another number of input channels."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

STEM_KEY = "encoder.patch_embed.proj.weight"
IGNORED_PREFIX = "decoder.aux_heads."  # deep-supervision heads: present or not depending on how it was built

# What nnU-Net 2.8.1 pickles besides tensors and builtins: numpy scalars in its logger and ``_best_ema``.
NUMPY_SCALAR_GLOBALS = [np.float64(0).__reduce__()[0], np.dtype] + sorted(  # [0]: numpy's `scalar`, 1.x and 2.x
    {type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32, np.bool_)}, key=str)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used for this network; the message says what to do."""


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


def check_state_dict_fits(network: torch.nn.Module, state_dict: dict) -> None:
    """Raise one CheckpointError saying what to do if ``state_dict`` is not a full state dict of ``network``."""
    own = network.state_dict()
    name = type(network).__name__
    stem = state_dict.get(STEM_KEY)
    if stem is not None and STEM_KEY in own and stem.shape[1] != own[STEM_KEY].shape[1]:
        raise CheckpointError(
            f"weights trained on {stem.shape[1]} input channel(s) do not fit this {name}, which takes "
            f"{own[STEM_KEY].shape[1]}. Give each case exactly {stem.shape[1]} image file(s) (_0000 ... "
            f"_{stem.shape[1] - 1:04d}, as in the training dataset.json 'channel_names'), or train a new model "
            f"for this number of channels.")
    theirs = {k for k in state_dict if not k.startswith(IGNORED_PREFIX)}
    ours = {k for k in own if not k.startswith(IGNORED_PREFIX)}
    if theirs != ours:
        raise CheckpointError(
            f"these are weights of another network than this {name}: they lack {len(ours - theirs)} of its tensors "
            f"(e.g. {sorted(ours - theirs)[:2]}) and have {len(theirs - ours)} it does not know (e.g. "
            f"{sorted(theirs - ours)[:2]}). Use the trainer (-tr) and plans (-p) they were trained with, or start "
            f"a new training without --c.")
    wrong = [f"{k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(ours)
             if state_dict[k].shape != own[k].shape]
    if wrong:
        raise CheckpointError(
            f"these weights have other widths than this {name} ({len(wrong)} tensors differ, e.g. {wrong[0]}). "
            f"Use the plans (-p) and trainer (-tr) they were trained with.")

"""The networks' own check of a state dict before a strict load: one clear error for weights of another network,
another number of input channels, or other widths."""
from __future__ import annotations

import torch

STEM_KEY = "encoder.patch_embed.proj.weight"
OPTIONAL_PREFIX = "decoder.aux_heads."  # deep-supervision heads: present or not depending on how it was built


class IncompatibleWeightsError(RuntimeError):
    """A state dict that does not fit this network; the message says what to do."""


def check_state_dict_fits(network: torch.nn.Module, state_dict: dict) -> None:
    """Raise one IncompatibleWeightsError saying what to do if ``state_dict`` is not a full state dict of
    ``network`` (deep-supervision heads may be present or absent on either side)."""
    own = network.state_dict()
    name = type(network).__name__
    stem = state_dict.get(STEM_KEY)
    if stem is not None and STEM_KEY in own and stem.shape[1] != own[STEM_KEY].shape[1]:
        raise IncompatibleWeightsError(
            f"weights trained on {stem.shape[1]} input channel(s) do not fit this {name}, which takes "
            f"{own[STEM_KEY].shape[1]}. Give each case exactly {stem.shape[1]} image file(s) (_0000 ... "
            f"_{stem.shape[1] - 1:04d}, as in the training dataset.json 'channel_names'), or train a new model "
            f"for this number of channels.")
    theirs = {k for k in state_dict if not k.startswith(OPTIONAL_PREFIX)}
    ours = {k for k in own if not k.startswith(OPTIONAL_PREFIX)}
    if theirs != ours:
        raise IncompatibleWeightsError(
            f"these are weights of another network than this {name}: they lack {len(ours - theirs)} of its tensors "
            f"(e.g. {sorted(ours - theirs)[:2]}) and have {len(theirs - ours)} it does not know (e.g. "
            f"{sorted(theirs - ours)[:2]}). Use the trainer (-tr) and plans (-p) they were trained with, or start "
            f"a new training without --c.")
    wrong = [f"{k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(ours)
             if state_dict[k].shape != own[k].shape]
    if wrong:
        raise IncompatibleWeightsError(
            f"these weights have other widths than this {name} ({len(wrong)} tensors differ, e.g. {wrong[0]}). "
            f"Use the plans (-p) and trainer (-tr) they were trained with.")

"""Load VMamba ImageNet checkpoints (v0 names, or v2+ names where shapes fit) into MambaUNet / VMUNet.

Checkpoint keys are first brought to VMamba v0 names (``patch_embed.{proj,norm}``, ``layers.{i}.blocks.{j}.{ln_1,
self_attention}``, ``layers.{i}.downsample``, ``norm``), then mapped onto ``encoder.<v0 name>``. Optionally, as
both original repositories do, decoder stage ``layers_up.{n-1-i}`` gets the blocks of encoder stage i (docs/architecture.md, "Pretrained weights").
A 3D network gets the 2D tensors inflated (:mod:`.vmamba_inflation`, docs/three_d.md).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from nnunetv2_mamba.nets.state_dict import STEM_KEY
from nnunetv2_mamba.nets.vmamba_inflation import inflation_rule, volume_key

logger = logging.getLogger("nnunetv2_mamba")

STATE_DICT_CONTAINERS = ("model", "model_ema", "state_dict")
EXPECTED = ("a VMamba classification checkpoint (.pth) holding a state dict, directly or under 'model', "
            "'model_ema' or 'state_dict', with keys like 'patch_embed.proj.weight' and "
            "'layers.0.blocks.0.self_attention.in_proj.weight' (v0) or 'layers.0.blocks.0.op.in_proj.weight' (v2+)")

# VMamba HEAD's names -> v0 names (the inverse of VSSM._load_from_state_dict's renames).
V2_TO_V0 = [
    (re.compile(r"^patch_embed\.0\."), "patch_embed.proj."),
    (re.compile(r"^patch_embed\.2\."), "patch_embed.norm."),
    (re.compile(r"^(layers\.\d+\.blocks\.\d+\.)norm\."), r"\1ln_1."),
    (re.compile(r"^(layers\.\d+\.blocks\.\d+\.)op\."), r"\1self_attention."),
    (re.compile(r"^classifier\.norm\."), "norm."),
    (re.compile(r"^classifier\.head\."), "head."),
]
ENCODER_KEY = re.compile(r"^(patch_embed\.|layers\.\d+\.|norm\.)")
BLOCK_KEY = re.compile(r"^layers\.(\d+)\.blocks\.(.*)$")


class PretrainedCheckpointError(ValueError):
    """The pretrained file is missing, unreadable, or holds nothing this network can use."""


@dataclass
class PretrainedLoadReport:
    """What ``load_vmamba_pretrained`` did. Model keys, except ``skipped`` (checkpoint keys). ``inflated``: loaded
    into a 3D network through a 2D -> 3D rule (depth-inflated convolutions and mergings, mapped directions)."""

    path: str
    checkpoint_format: str
    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    inflated: list[str] = field(default_factory=list)
    shape_mismatched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_loaded: list[str] = field(default_factory=list)

    def summary(self) -> str:
        inflated = f", {len(self.inflated)} inflated from 2D to 3D" if self.inflated else ""
        return (f"pretrained {self.path} ({self.checkpoint_format} names): loaded {len(self.loaded)} tensors "
                f"({len(self.adapted)} stem tensors adapted to the input channels{inflated}), "
                f"{len(self.shape_mismatched)} shape-mismatched, {len(self.skipped)} checkpoint tensors unused, "
                f"{len(self.not_loaded)} model tensors keep their initialisation")


def read_state_dict(path, state_dict_key: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a local checkpoint file, taken from ``state_dict_key`` or the first known container."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedCheckpointError(f"pretrained checkpoint not found: {path}. Expected {EXPECTED}.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        if "Unsupported global" in str(err):
            raise PretrainedCheckpointError(
                f"{path} pickles Python objects besides tensors (e.g. a training config), which are not loaded "
                f"for safety. Expected {EXPECTED}. If the file is trusted, save its state dict alone: "
                f"torch.save(torch.load(path, weights_only=False)['model'], 'weights.pth').") from err
        message = str(err).strip()
        reason = ("damaged, or not written by torch.save" if "Weights only load failed" in message or not message
                  else message.splitlines()[0])
        raise PretrainedCheckpointError(f"could not read {path} as a PyTorch checkpoint "
                                        f"({type(err).__name__}: {reason}). Expected {EXPECTED}.") from err
    if not isinstance(checkpoint, dict):
        raise PretrainedCheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a dict. Expected {EXPECTED}.")
    keys = [state_dict_key] if state_dict_key else STATE_DICT_CONTAINERS
    container = next((checkpoint[k] for k in keys if isinstance(checkpoint.get(k), dict)), None)
    if container is None:
        if state_dict_key:
            raise PretrainedCheckpointError(f"{path} has no state dict under {state_dict_key!r}; "
                                            f"top-level keys: {sorted(checkpoint)[:10]}")
        container = checkpoint
    return {k: v for k, v in container.items() if isinstance(v, torch.Tensor)}


def to_v0_names(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Strip a DataParallel ``module.`` prefix and rename v2+ keys to v0; returns the dict and the format seen."""
    renamed, saw_v2 = {}, False
    for key, tensor in state_dict.items():
        key = key.removeprefix("module.")
        for pattern, replacement in V2_TO_V0:
            key, hits = pattern.subn(replacement, key)
            saw_v2 |= bool(hits)
        renamed[key] = tensor
    return renamed, ("v2+" if saw_v2 else "v0")


def targets(key: str, num_stages: int, init_decoder_from_encoder: bool) -> list[str]:
    """Model keys a v0 checkpoint key feeds: ``encoder.<key>``, and the mirrored decoder stage's block."""
    found = ["encoder." + key] if ENCODER_KEY.match(key) else []
    block = BLOCK_KEY.match(key)
    if init_decoder_from_encoder and block and int(block[1]) < num_stages:
        found.append(f"decoder.layers_up.{num_stages - 1 - int(block[1])}.blocks.{block[2]}")
    return found


def same_except_channels(a: torch.Size, b: torch.Size) -> bool:
    """Conv weights (O, I, kh, kw) that differ at most in I."""
    return a[:1] + a[2:] == b[:1] + b[2:]


def load_vmamba_pretrained(model: nn.Module, path, *, init_decoder_from_encoder: bool = False,
                           state_dict_key: str | None = None) -> PretrainedLoadReport:
    """Copy a VMamba checkpoint into ``model``'s encoder (and mirrored decoder blocks) where shapes fit.

    A 3-channel stem is adapted to the model's input channels as timm's ``adapt_input_conv`` does; a 3D model
    (``spatial_dims=3``) gets the tensors inflated (:mod:`.vmamba_inflation`).
    Raises ``PretrainedCheckpointError`` when the file is missing, unreadable or matches no key.
    """
    from timm.models import adapt_input_conv  # timm's package import loads its model zoo: only when loading weights

    checkpoint, checkpoint_format = to_v0_names(read_state_dict(path, state_dict_key))
    own = model.state_dict()
    num_stages = len(model.encoder.layers)
    volume = getattr(model, "spatial_dims", 2) == 3
    report = PretrainedLoadReport(str(path), checkpoint_format)
    updates = {}
    for key, tensor in checkpoint.items():
        destinations = [volume_key(t) if volume else t for t in targets(key, num_stages, init_decoder_from_encoder)]
        destinations = [t for t in destinations if t in own]
        if not destinations:
            report.skipped.append(key)
        for target in destinations:
            wanted = own[target].shape
            rule = inflation_rule(target) if volume else None
            if rule is not None:
                inflated = rule(tensor, wanted, model.geometry, target)
                if inflated is None:
                    report.shape_mismatched.append(f"{target} <- {key}: {tuple(tensor.shape)} has no 3D inflation "
                                                   f"to {tuple(wanted)}")
                    continue
                updates[target] = inflated
                report.inflated.append(target)
                if target == STEM_KEY and tensor.shape[1] != wanted[1]:
                    report.adapted.append(target)
            elif tensor.shape == wanted:
                updates[target] = tensor
            elif target == STEM_KEY and tensor.shape[1] == 3 and same_except_channels(tensor.shape, wanted):
                updates[target] = adapt_input_conv(wanted[1], tensor)
                report.adapted.append(target)
            else:
                report.shape_mismatched.append(f"{target} <- {key}: {tuple(tensor.shape)} vs {tuple(wanted)}")
    if not updates:
        raise PretrainedCheckpointError(
            f"{path} has no tensor this {type(model).__name__} can use ({len(checkpoint)} tensors, e.g. "
            f"{sorted(checkpoint)[:3]}). Expected {EXPECTED}, with widths matching the model's dims.")
    model.load_state_dict(updates, strict=False)
    report.loaded = sorted(updates)
    report.not_loaded = sorted(set(own) - set(updates))
    logger.info(report.summary())
    logger.debug("not loaded: %s; shape-mismatched: %s; unused: %s",
                 report.not_loaded, report.shape_mismatched, report.skipped)
    return report

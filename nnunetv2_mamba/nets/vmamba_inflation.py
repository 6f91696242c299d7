"""2D VMamba checkpoint tensors inflated into a 3D network's shapes (docs/three_d.md, "Pretrained weights in 3D").

The volume's axes are (D, H, W) and the image's (H, W): in-plane weights stay in-plane, depth is added.

- Convolutions (the stem's patch embedding, each block's depthwise ``conv2d`` -> ``conv3d``): the 2D kernel is
  repeated along depth and divided by the depth (I3D's inflation), so a volume constant along depth gives the 2D
  response (away from the depthwise conv's zero-padded first and last slices). A 3-channel stem is first adapted
  to the input channels as in 2D.
- Patch merging with factors (f, 2, 2): the 3D concatenation visits depth fastest, so each 2D neighbour's block
  of weights is repeated f times (LayerNorm weight and bias) and divided by f (reduction); again a
  depth-constant volume gives the 2D result. Other in-plane factors have no 2D counterpart: left untouched.
- Direction parameters (``x_proj_weight``, ``dt_projs_weight``, ``dt_projs_bias``, ``A_logs``, ``Ds``): every
  3D direction takes the whole parameter set of one 2D direction, never a mix (each direction's dt projection
  reads its own x projection's output). Same fastest axis and sense where the image has that axis: W fastest
  <- row-major (2D k = 0), H fastest <- column-major (k = 1), and their reverses <- k = 2, 3; D fastest, which
  the image lacks, <- column-major (and its reverse <- k = 3), the 2D order whose fast axis is not the
  row-contiguous one. K = 6: 3D (0..5) <- 2D (0, 1, 1, 2, 3, 3); K = 4: the identity; K = 2: (0, 2).
"""
from __future__ import annotations

import re
from typing import Callable

import torch

from nnunetv2_mamba.nets.geometry import Geometry
from nnunetv2_mamba.ops.cross_scan_3d import scan_orders

IMAGE_DIRECTION_OF_AXIS = {2: 0, 1: 1, 0: 1}  # fastest axis of (D, H, W) -> forward 2D direction (row/column-major)
MERGING_KEY = re.compile(r"^encoder\.layers\.(\d+)\.downsample\.(norm\.weight|norm\.bias|reduction\.weight)$")

Rule = Callable[[torch.Tensor, torch.Size, Geometry, str], "torch.Tensor | None"]


def volume_key(key: str) -> str:
    """A 2D model key -> the 3D model's: the depthwise convolution is ``conv3d``."""
    return key.replace(".conv2d.", ".conv3d.")


def image_direction_sources(num_directions: int) -> list[int]:
    """For each of the K 3D directions, the 2D direction (0..3) whose parameters it starts from."""
    return [IMAGE_DIRECTION_OF_AXIS[axis] + (2 if reverse else 0) for axis, reverse in scan_orders(num_directions)]


def _inflate_depth(tensor: torch.Tensor, wanted: torch.Size, geometry: Geometry, key: str) -> torch.Tensor | None:
    """(O, I, kh, kw) -> (O, I', kd, kh, kw): channel-adapted if a 3-channel stem, repeated along depth / kd."""
    from timm.models import adapt_input_conv  # timm's package import loads its model zoo: only when loading weights

    if key == "encoder.patch_embed.proj.weight" and tensor.shape[1] == 3 and wanted[1] != 3:
        tensor = adapt_input_conv(wanted[1], tensor)
    if len(wanted) != 5 or tensor.shape != wanted[:2] + wanted[3:]:
        return None
    depth = wanted[2]
    return tensor.unsqueeze(2).expand(-1, -1, depth, -1, -1) / depth


def _select_directions(tensor: torch.Tensor, wanted: torch.Size, geometry: Geometry, key: str) -> torch.Tensor | None:
    """Per-direction tensors (4, ...) or flattened (4*D, ...) -> the K directions' (image_direction_sources)."""
    per_direction = wanted[0] // geometry.num_directions
    if tensor.shape[0] % 4 or tensor.shape[0] // 4 != per_direction or tensor.shape[1:] != wanted[1:]:
        return None
    grouped = tensor.reshape(4, per_direction, *tensor.shape[1:])
    return grouped[image_direction_sources(geometry.num_directions)].reshape(wanted)


def _inflate_merging(tensor: torch.Tensor, wanted: torch.Size, geometry: Geometry, key: str) -> torch.Tensor | None:
    """A (2, 2) merging's 4 neighbour blocks -> an (f, 2, 2) merging's 4f, depth fastest (module docstring)."""
    factors = geometry.merge_factors[int(MERGING_KEY.match(key)[1])]
    depth = factors[0]
    blocks_axis = 0 if tensor.dim() == 1 else 1
    inflated_shape = list(tensor.shape)
    inflated_shape[blocks_axis] *= depth
    if tuple(factors[1:]) != (2, 2) or tuple(inflated_shape) != tuple(wanted):
        return None
    blocks = tensor.reshape(*tensor.shape[:blocks_axis], 4, -1).repeat_interleave(depth, dim=blocks_axis)
    blocks = blocks.reshape(wanted)
    return blocks / depth if key.endswith("reduction.weight") else blocks


def inflation_rule(key: str) -> Rule | None:
    """How a 2D tensor becomes the 3D model's tensor ``key``; None for keys whose shape does not change."""
    if key == "encoder.patch_embed.proj.weight" or key.endswith(".conv3d.weight"):
        return _inflate_depth
    if key.rsplit(".", 1)[-1] in ("x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds"):
        return _select_directions
    if MERGING_KEY.match(key):
        return _inflate_merging
    return None

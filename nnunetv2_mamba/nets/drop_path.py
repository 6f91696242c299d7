"""Stochastic depth (drop path) of the VSS blocks: torchvision's ``StochasticDepth`` in row mode under timm's name and
attribute. It draws one Bernoulli(1 - drop_prob) per sample and scales the kept ones by 1 / (1 - drop_prob), the same
random draw as timm's ``DropPath`` that the original VMamba code uses, so a seeded run drops the same samples;
importing timm instead would load its whole model zoo with every command."""
from __future__ import annotations

from torchvision.ops import StochasticDepth


class DropPath(StochasticDepth):
    """(B, ...) -> (B, ...): in training each sample zeroed with probability ``drop_prob``, the others scaled by
    1 / (1 - drop_prob); the identity in eval mode or at 0. No parameters or buffers (no state-dict keys)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__(drop_prob, "row")

    @property
    def drop_prob(self) -> float:
        return self.p

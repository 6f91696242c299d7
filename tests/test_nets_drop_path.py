"""Drop path (nnunetv2_mamba.nets.drop_path) against timm's DropPath, which the original VMamba blocks use."""
from __future__ import annotations

import pytest
import torch

from nnunetv2_mamba.nets.drop_path import DropPath


@pytest.mark.parametrize("drop_prob", [0.0, 0.3, 1.0])
def test_drop_path_drops_the_samples_timms_drop_path_drops(drop_prob):
    """Same draws from the same seed and the same scaling in training, the identity in eval, no state-dict keys."""
    from timm.layers.drop import DropPath as TimmDropPath

    x = torch.randn(8, 3, 4, 5)
    ours, timms = DropPath(drop_prob), TimmDropPath(drop_prob)
    for training in (True, False):
        ours.train(training), timms.train(training)
        torch.manual_seed(0)
        expected = timms(x)
        torch.manual_seed(0)
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=0)
    assert ours.drop_prob == drop_prob and ours.state_dict() == {} == timms.state_dict()

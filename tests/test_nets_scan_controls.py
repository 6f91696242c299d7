"""The scan controls (nets/scan_variants.py): ``scan="none"`` and ``scan="one_way"`` change only the selective scan
of SS2D / SS3D and of both networks, 2D and 3D; each mixer test runs with each CPU scan backend."""
import pytest
import torch

from nnunetv2_mamba.nets import SS2D, SS3D, MambaUNet, VMUNet
from nnunetv2_mamba.nets.ss2d import SelectiveScanMixer
from helpers import assert_fp32_close
from mixer_checks import mixer_roundings, randomise

#: the scan's own parameters, one slice per direction (dim 0: K, or K*D for A_logs and Ds)
SCAN_PARAMETERS = ("x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds")
TINY = {"dims": (8, 16, 32, 64)}
NETWORKS = [(MambaUNet, 2), (VMUNet, 2), (MambaUNet, 3), (VMUNet, 3)]
MIXERS = [(SS2D, {}, (2, 3, 5, 4)), (SS3D, {}, (1, 2, 3, 4, 4)), (SS3D, {"num_directions": 4}, (1, 3, 2, 2, 4))]


def is_scan_parameter(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in SCAN_PARAMETERS


def count(module: torch.nn.Module, keep=lambda key: True) -> int:
    return sum(p.numel() for key, p in module.named_parameters() if keep(key))


def network(cls, spatial_dims: int, scan: str):
    torch.manual_seed(0)
    return cls(1, 3, spatial_dims=spatial_dims, scan=scan, **TINY).eval()


def network_input(spatial_dims: int) -> torch.Tensor:
    return torch.randn(1, 1, *(32,) * spatial_dims, generator=torch.Generator().manual_seed(1))


def direction_zero(state: dict, d_inner: dict) -> dict:
    """Each mixer's scan parameters cut to direction 0's slice (``d_inner``: {mixer's key prefix: its D}; "" for a
    mixer's own state dict)."""
    sliced = {}
    for key, value in state.items():
        if is_scan_parameter(key):
            prefix, _, name = key.rpartition(".")
            value = value[:d_inner[prefix]] if name in ("A_logs", "Ds") else value[:1]
        sliced[key] = value
    return sliced


def remove_other_directions(mixer: SelectiveScanMixer) -> None:
    """Directions 1..K-1 contribute nothing: their C projection rows and skip weights D are zero (y = C·h + D·u)."""
    D, N, R = mixer.d_inner, mixer.d_state, mixer.dt_rank
    with torch.no_grad():
        mixer.x_proj_weight[1:, R + N:] = 0
        mixer.Ds[D:] = 0


def reduce_to_control(parent: torch.nn.Module, scan: str) -> dict:
    """Make ``parent`` (a mixer or a network) compute what its ``scan`` control computes, and return the control's
    weights: for "none" every mixer's scan becomes the identity and the scan parameters are left out; for "one_way"
    the other directions contribute nothing and the scan parameters are cut to direction 0's slice."""
    mixers = {name: m for name, m in parent.named_modules() if isinstance(m, SelectiveScanMixer)}
    for mixer in mixers.values():
        if scan == "none":
            mixer.scan = lambda x: x
        else:
            remove_other_directions(mixer)
    if scan == "none":
        return {k: v for k, v in parent.state_dict().items() if not is_scan_parameter(k)}
    return direction_zero(parent.state_dict(), {name: m.d_inner for name, m in mixers.items()})


@pytest.mark.parametrize("cls,spatial_dims", NETWORKS)
def test_the_controls_lose_exactly_the_scans_parameters(cls, spatial_dims):
    parent, one_way, no_scan = (network(cls, spatial_dims, scan) for scan in ("cross", "one_way", "none"))
    K = 4 if spatial_dims == 2 else 6
    scan = count(parent, is_scan_parameter)
    assert scan > 0 and scan % K == 0
    assert count(no_scan) == count(parent) - scan
    assert count(one_way) == count(parent) - scan * (K - 1) // K
    parent_keys = set(parent.state_dict())
    assert set(no_scan.state_dict()) == {key for key in parent_keys if not is_scan_parameter(key)}
    assert set(one_way.state_dict()) == parent_keys
    mixers = [m for m in no_scan.modules() if isinstance(m, SelectiveScanMixer)]
    assert mixers and all(m.scan_kind == "none" for m in mixers)


@pytest.mark.usefixtures("cpu_scan_backend")
@pytest.mark.parametrize("scan", ["none", "one_way"])
@pytest.mark.parametrize("cls,spatial_dims", NETWORKS)
def test_a_control_network_is_its_parent_with_the_scan_reduced(cls, spatial_dims, scan):
    """Bit for bit: "none" runs the parent's operations without the scan; under "one_way" direction 0's channels go
    through the same operations (a per-direction batch of the same products, a per-channel scan) and the merge adds
    exact zeros for the others."""
    parent, control = network(cls, spatial_dims, "cross"), network(cls, spatial_dims, scan)
    control.load_state_dict(reduce_to_control(parent, scan))
    x = network_input(spatial_dims)
    with torch.no_grad():
        assert torch.equal(control(x), parent(x))


@pytest.mark.usefixtures("cpu_scan_backend")
@pytest.mark.parametrize("scan", ["none", "one_way"])
@pytest.mark.parametrize("cls,kwargs,shape", MIXERS)
def test_a_control_mixer_is_its_parent_with_the_scan_reduced(cls, kwargs, shape, scan):
    """Random weights (all directions' slices differ): "none" bit for bit, "one_way" within the mixer's fp32
    roundings."""
    parent, control = cls(4, d_state=4, **kwargs), cls(4, d_state=4, scan=scan, **kwargs)
    randomise(parent)
    control.load_state_dict(reduce_to_control(parent, scan))
    assert control.directions.num_directions == (1 if scan == "one_way" else parent.directions.num_directions)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        if scan == "none":
            assert torch.equal(control(x), parent(x))
        else:
            assert_fp32_close(control(x), parent(x), mixer_roundings(parent, L=x[0, ..., 0].numel()))


def test_an_unknown_scan_is_one_clear_error():
    with pytest.raises(ValueError, match="scan='two_way': choose 'cross'.*'one_way'.*'none'"):
        MambaUNet(1, 2, scan="two_way", **TINY)

"""Backend choice (argument, $nnUNet_mamba_scan, auto), its errors and log line, the doctor, and that
importing the package survives a missing or broken mamba-ssm / causal-conv1d / triton."""
import dataclasses
import logging
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch

from nnunetv2_mamba.ops import backends, selective_scan, selective_scan_reference
from nnunetv2_mamba.ops.backends import Availability, choose_backend, requested_backend
from helpers import run_python

OPTIONAL = ("mamba_ssm", "selective_scan_cuda", "causal_conv1d", "triton")


def small_inputs():
    torch.manual_seed(0)
    u = torch.randn(2, 4, 20)
    return u, 0.5 * torch.rand(2, 4, 20), -0.5 * torch.rand(4, 3), torch.randn(2, 3, 20), torch.randn(2, 3, 20)


def test_env_variable_selects_and_argument_overrides(monkeypatch):
    monkeypatch.setenv("nnUNet_mamba_scan", "torch")
    assert requested_backend() == "torch"
    monkeypatch.setenv("nnUNet_mamba_scan", " Auto ")
    assert requested_backend() == "auto"
    monkeypatch.setenv("nnUNet_mamba_scan", "cuda")
    assert requested_backend("torch") == "torch"
    torch.testing.assert_close(selective_scan(*small_inputs(), backend="torch"),  # fp32 tolerances: tests/helpers.py
                               selective_scan_reference(*small_inputs()), rtol=6e-4, atol=2e-3)


def test_unknown_value_names_the_valid_ones(monkeypatch):
    monkeypatch.setenv("nnUNet_mamba_scan", "mamba")
    with pytest.raises(ValueError, match="nnUNet_mamba_scan='mamba'.*auto, cuda, triton, cpu, torch"):
        selective_scan(*small_inputs())
    with pytest.raises(ValueError, match="backend='fast'"):
        selective_scan(*small_inputs(), backend="fast")


def test_cuda_backend_on_cpu_tensors_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("nnUNet_mamba_scan", "cuda")
    with pytest.raises(RuntimeError, match="(MAMBA_FORCE_BUILD=TRUE pip install mamba-ssm|needs CUDA tensors)"):
        selective_scan(*small_inputs())


def test_kernel_backends_refuse_tensors_of_another_device_even_when_available(monkeypatch):
    monkeypatch.setattr(backends, "availability", lambda name: Availability(True, f"fake {name}", None))
    for name in ("cuda", "triton"):
        with pytest.raises(RuntimeError, match=f"'{name}' needs CUDA tensors, got cpu.*backend='torch'"):
            choose_backend(name, torch.device("cpu"))
    with pytest.raises(RuntimeError, match="'cpu' needs CPU tensors, got cuda tensors.*backend='torch'"):
        choose_backend("cpu", torch.device("cuda"))
    for device in ("cpu", "cuda", "mps"):
        assert choose_backend("torch", torch.device(device))[0] == "torch"


@pytest.mark.parametrize("available,on_cuda,on_cpu", [
    ({"cuda", "triton", "cpu", "torch"}, "cuda", "cpu"), ({"triton", "torch"}, "triton", "torch"),
    ({"cpu", "torch"}, "torch", "cpu"), ({"torch"}, "torch", "torch")])
def test_auto_priority_per_device(monkeypatch, available, on_cuda, on_cpu):
    monkeypatch.setattr(backends, "availability",
                        lambda name: Availability(name in available, f"fake {name}", None))
    monkeypatch.setattr(backends, "smoke_test_failure", lambda name, device: None)
    assert choose_backend("auto", torch.device("cuda"))[0] == on_cuda
    assert choose_backend("auto", torch.device("cpu"))[0] == on_cpu
    assert choose_backend("auto", torch.device("mps"))[0] == "torch"


@pytest.mark.parametrize("device,failing,expected", [("cuda", "cuda", "triton"), ("cpu", "cpu", "torch")])
def test_auto_skips_a_kernel_that_imports_but_fails_on_the_device(monkeypatch, caplog, device, failing,
                                                                    expected):
    """E.g. Triton on a GPU it cannot compile for, or a miscompiled CPU kernel: auto logs why and takes the next
    backend."""
    monkeypatch.setattr(backends, "availability", lambda name: Availability(True, f"fake {name}", None))
    monkeypatch.setattr(backends, "smoke_test_failure", lambda name, device: (
        "a test scan raised RuntimeError('no kernel image')" if name == failing else None))
    with caplog.at_level(logging.WARNING, logger="nnunetv2_mamba"):
        assert choose_backend("auto", torch.device(device))[0] == expected
    assert f"'{failing}' imports but is skipped" in caplog.text and "no kernel image" in caplog.text


def test_smoke_test_catches_errors_and_wrong_numbers(monkeypatch):
    """Run on the CPU with stand-in backends: one raises, one is off by 1, the torch scan itself passes."""
    torch_scan = backends.availability("torch").function

    def broken(*args):
        raise RuntimeError("PTX compile failed")

    stand_ins = {"broken": broken, "wrong": lambda *args: torch_scan(*args) + 1, "right": torch_scan}
    real = backends.availability
    monkeypatch.setattr(backends, "availability", lambda name: (Availability(True, name, stand_ins[name])
                                                                if name in stand_ins else real(name)))
    backends.smoke_test_failure.cache_clear()
    assert "PTX compile failed" in backends.smoke_test_failure("broken", "cpu")
    assert "test scan's y differs from the reference scan's by" in backends.smoke_test_failure("wrong", "cpu")
    assert backends.smoke_test_failure("right", "cpu") is None
    backends.smoke_test_failure.cache_clear()


def scan_with_backward(backward):
    """The torch scan followed by an identity whose backward is ``backward(grad)``: a kernel whose forward is right
    and whose backward is not."""
    class Identity(torch.autograd.Function):
        @staticmethod
        def forward(ctx, y):
            return y.clone()

        @staticmethod
        def backward(ctx, grad):
            return backward(grad)
    torch_scan = backends.availability("torch").function
    return lambda *args: Identity.apply(torch_scan(*args))


def fails_to_compile(grad):
    raise RuntimeError("backward kernel failed to compile")


def test_smoke_test_runs_the_backward_at_real_sizes_and_auto_falls_back_with_the_reason(monkeypatch, caplog):
    """A kernel whose forward is right but whose backward raises or is wrong is skipped by auto, with the reason;
    the test scan runs at the networks' state size and the kernels' block sizes, whatever the caller's grad mode."""
    torch_scan = backends.availability("torch").function
    seen_shapes = []

    def recording(*args):
        seen_shapes.append((tuple(args[0].shape), tuple(args[2].shape), tuple(args[3].shape)))
        return torch_scan(*args)

    stand_ins = {"cpu": scan_with_backward(fails_to_compile), "doubled": scan_with_backward(lambda grad: 2 * grad),
                 "recording": recording}
    real = backends.availability
    monkeypatch.setattr(backends, "availability", lambda name: (Availability(True, name, stand_ins[name])
                                                                if name in stand_ins else real(name)))
    backends.smoke_test_failure.cache_clear()
    try:
        with torch.inference_mode():  # e.g. nnU-Net's predictor asking first
            assert backends.smoke_test_failure("recording", "cpu") is None
            failure = backends.smoke_test_failure("doubled", "cpu")
            assert "du differs from the reference scan's by 1 of its largest value" in failure
            with caplog.at_level(logging.WARNING, logger="nnunetv2_mamba"):
                assert choose_backend("auto", torch.device("cpu"))[0] == "torch"
    finally:
        backends.smoke_test_failure.cache_clear()
    assert seen_shapes == [((2, 48, 150), (48, 16), (2, 2, 16, 150))]  # d_state 16, 24 channels per group
    assert "'cpu' imports but is skipped on cpu" in caplog.text and "backward kernel failed to compile" in caplog.text


def test_the_fused_cross_scans_follow_the_triton_smoke_test(monkeypatch, caplog):
    """On CUDA the GPU kernel backends run their channels-first cross scans as the Triton kernels only where
    triton's smoke test passed; else the torch permutations, and the reason is logged once. The choice is made with
    the backend's (:class:`ScanBackend`'s ``fused_cross_scans``), and the crossing follows it."""
    from nnunetv2_mamba.ops import IMAGE_DIRECTIONS
    monkeypatch.setattr(backends, "availability", lambda name: Availability(True, f"fake {name}", None))
    monkeypatch.setattr(backends, "_CHOSEN", {})
    verdicts = {"cuda:0": None, "cuda:1": "a test scan raised RuntimeError('no kernel image')"}
    monkeypatch.setattr(backends, "smoke_test_failure", lambda name, device: verdicts[device])
    with caplog.at_level(logging.WARNING, logger="nnunetv2_mamba"):
        for name in ("cuda", "triton"):
            assert backends.fused_cross_scans(name, torch.device("cuda:0"))
            assert not backends.fused_cross_scans(name, torch.device("cuda:1"))
    assert caplog.text.count("fused Triton cross scans are not used on cuda:1") == 1
    assert "no kernel image" in caplog.text
    assert not backends.fused_cross_scans("torch", torch.device("cuda:0"))
    assert not backends.fused_cross_scans("cpu", torch.device("cpu"))
    fused = backends.scan_backend(torch.device("cuda:0"), "cuda")
    assert fused.fused_cross_scans and not backends.scan_backend(torch.device("cuda:1"), "cuda").fused_cross_scans
    fused_pair = SimpleNamespace(scan="fused scan", merge="fused merge")
    directions = dataclasses.replace(IMAGE_DIRECTIONS, fused_channels_first=lambda: fused_pair)
    assert fused.crossing(directions) == ("fused scan", "fused merge")
    assert dataclasses.replace(fused, fused_cross_scans=False).crossing(directions) == (
        directions.scan_channels_first, directions.merge_channels_first)
    assert not backends.scan_backend(torch.device("cuda:0"), "torch").fused_cross_scans


def test_choice_is_logged_once(caplog, monkeypatch):
    monkeypatch.setattr(backends, "_CHOSEN", {})
    backends._log_choice.cache_clear()
    with caplog.at_level(logging.INFO, logger="nnunetv2_mamba"):
        selective_scan(*small_inputs(), backend="torch")
        selective_scan(*small_inputs(), backend="torch")
    lines = [r.getMessage() for r in caplog.records if r.name == "nnunetv2_mamba"]
    assert len(lines) == 1 and "'torch'" in lines[0]


def test_scan_backend_bundles_each_scan_with_its_layout(monkeypatch):
    """The mixers ask once per device: the scan, its layout, and through it the cross scan / merge of their
    directions in that layout (an image's four, a volume's K)."""
    from nnunetv2_mamba.ops import IMAGE_DIRECTIONS, volume_directions
    monkeypatch.setattr(backends, "availability", lambda name: Availability(True, f"fake {name}", f"scan {name}"))
    monkeypatch.setattr(backends, "smoke_test_failure", lambda name, device: None)
    monkeypatch.setattr(backends, "_CHOSEN", {})
    for name, device in [("cuda", "cuda"), ("triton", "cuda"), ("cpu", "cpu"), ("torch", "cpu"),
                         ("torch", "cuda")]:
        backend = backends.scan_backend(torch.device(device), name)
        assert backend is backends.scan_backend(device, name.upper())  # chosen once
        assert (backend.name, backend.scan, backend.device) == (name, f"scan {name}", torch.device(device))
        expected_layout = "channels_first" if name in ("cuda", "triton") else "channels_last"
        assert backend.layout == expected_layout
        assert backend.fused_cross_scans == (name in ("cuda", "triton"))  # on CUDA, where the smoke test passed
        for directions in (IMAGE_DIRECTIONS, volume_directions(6)):
            layout = expected_layout.removeprefix("channels_")
            unfused = dataclasses.replace(backend, fused_cross_scans=False)
            assert unfused.crossing(directions) == (getattr(directions, f"scan_channels_{layout}"),
                                                    getattr(directions, f"merge_channels_{layout}"))


def test_a_mixer_chooses_its_backend_once_per_device_and_carries_it(monkeypatch):
    """SS2D asks for its backend the first time it meets a device and keeps it (a later $nnUNet_mamba_scan does not
    change a mixer that already ran); its scan and cross scans run on that value without resolving the request
    again, with or without gradients."""
    from nnunetv2_mamba.nets import SS2D
    monkeypatch.setenv("nnUNet_mamba_scan", "torch")
    requests = []
    real = backends.requested_backend
    monkeypatch.setattr(backends, "requested_backend", lambda *args: requests.append(args) or real(*args))
    torch.manual_seed(0)
    layer, x = SS2D(8), torch.randn(1, 5, 6, 8, requires_grad=True)
    layer(x).sum().backward()
    monkeypatch.setenv("nnUNet_mamba_scan", "auto")
    with torch.no_grad():
        layer(x)
    layer(x).sum().backward()
    assert len(requests) == 1 and layer.scan_backend_for(x.device).name == "torch"


def test_bad_shapes_raise_one_clear_error():
    u, delta, A, B, C = small_inputs()
    with pytest.raises(ValueError, match="B must be time-variant"):
        selective_scan(u, delta, A, B[:, :2], C)
    with pytest.raises(ValueError, match="groups dividing 4"):
        selective_scan(u, delta, A, B.view(2, 1, 3, 20).expand(2, 3, 3, 20), C)
    with pytest.raises(ValueError, match="D must be"):
        selective_scan(u, delta, A, B, C, D=torch.ones(3))


SCAN_ON_CPU = """
    import nnunetv2_mamba, nnunetv2_mamba.ops, torch
    from nnunetv2_mamba.ops import selective_scan, selective_scan_reference
    torch.manual_seed(0)
    u = torch.randn(1, 2, 9)
    args = (u, u.abs(), -torch.rand(2, 3), torch.randn(1, 3, 9), torch.randn(1, 3, 9))
    # two fp32 scans summing in other orders: mamba-ssm's fp32 tolerances, which bound that (tests/helpers.py)
    torch.testing.assert_close(selective_scan(*args), selective_scan_reference(*args), rtol=6e-4, atol=2e-3)
    from nnunetv2_mamba.doctor import run
    import argparse
    assert run(argparse.Namespace(backend=None)) == 0
"""


def cpu_choice() -> str:
    """What auto picks on CPU tensors in a fresh process here: cpu where a C compiler builds the kernel."""
    return "cpu" if backends.availability("cpu").available else "torch"


def test_import_and_scan_without_optional_packages():
    blocker = f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in {OPTIONAL!r}:
                    raise ModuleNotFoundError(f'blocked {{name}}')
        sys.meta_path.insert(0, Block())
    """
    result = run_python(textwrap.dedent(blocker) + textwrap.dedent(SCAN_ON_CPU))
    assert result.returncode == 0, result.stderr
    assert "cuda    unavailable" in result.stdout and f"chosen on cpu: {cpu_choice()}" in result.stdout


def test_import_and_scan_with_broken_optional_packages(tmp_path):
    for name in ("mamba_ssm", "causal_conv1d", "triton"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise RuntimeError('broken {name}')\n")
    (tmp_path / "selective_scan_cuda.py").write_text("def fwd(*args): raise RuntimeError('never called')\n")
    result = run_python(SCAN_ON_CPU, pythonpath=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mamba_ssm does not import (RuntimeError('broken mamba_ssm'))" in result.stdout
    assert "triton does not import (RuntimeError('broken triton'))" in result.stdout


def test_doctor_subcommand():
    result = subprocess.run([sys.executable, "-m", "nnunetv2_mamba", "doctor"], capture_output=True, text=True,
                            env=dict(os.environ, nnUNet_mamba_scan="torch"), timeout=300)
    assert result.returncode == 0, result.stderr
    for expected in (f"torch {torch.__version__}", "device:", "cuda ", "triton ", "torch ",
                     "chosen on cpu: torch (requested"):
        assert expected in result.stdout


def test_package_import_and_cpu_scan_load_no_optional_package():
    result = run_python(SCAN_ON_CPU.split("from nnunetv2_mamba.doctor")[0] + f"""
    import sys
    loaded = [m for m in {OPTIONAL!r} if m in sys.modules]
    assert not loaded, loaded
    """)
    assert result.returncode == 0, result.stderr

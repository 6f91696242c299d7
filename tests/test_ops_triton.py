"""Triton selective scan and cross scan/merge against the reference scan and the torch cross-scan definition.

The Triton kernels run in ONE subprocess (this file run as a script): with ``TRITON_INTERPRET=1`` on a machine
without CUDA (Triton's interpreter executes them on CPU tensors), compiled on the GPU otherwise. Triton's
interpret mode is fixed when the kernels are decorated, so a subprocess keeps it away from every other test in this
pytest process. The reference and all assertions run here, in the test process.
"""
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton", reason="triton cannot be imported; the Triton backend is optional")

from nnunetv2_mamba.ops.scan_reference import selective_scan_reference  # noqa: E402
from nnunetv2_mamba.ops.tolerances import scan_tolerances  # noqa: E402
from triton_runs import compile_offline, run_worker  # noqa: E402

SCAN_CASES = {
    # name: (dtype, batch, channels, state size, length, groups (None: 3-D B/C), D, z, delta_bias, softplus,
    #        return_last_state, time steps per chunk). Lengths are never a multiple of the chunk.
    "G2_all_options": (torch.float32, 2, 4, 8, 100, 2, True, True, True, True, True, 32),
    "G1_3d_BC_all_options": (torch.float32, 2, 4, 8, 100, None, True, True, True, True, True, 32),
    "bare_odd_sizes": (torch.float32, 1, 6, 5, 37, 1, False, False, False, False, False, 16),
    "G2_D_bias_no_softplus": (torch.float32, 2, 6, 8, 70, 2, True, False, True, False, True, 16),
    "many_chunks": (torch.float32, 1, 4, 4, 301, 1, True, True, True, True, True, 8),
    "several_channel_blocks": (torch.float32, 1, 20, 16, 45, 2, True, True, True, True, True, 32),
    "float16": (torch.float16, 2, 4, 8, 64 + 9, None, True, True, True, True, True, 32),
    "bfloat16": (torch.bfloat16, 2, 4, 8, 50, 2, True, True, True, True, True, 32),
    # the networks' state size and the default chunk: (4, 16, 32) tiles, 6 channel blocks per group, 5 chunks
    "d_state_16_default_blocks": (torch.float32, 2, 48, 16, 150, 2, True, True, True, True, True, 32),
}
CROSS_SHAPES = {"square": (2, 3, 5, 5, torch.float32), "wide": (2, 3, 3, 7, torch.float32),
                "tall_float16": (1, 2, 9, 4, torch.float16)}
GRAD_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_scan_inputs(name):
    """mamba-ssm's test recipe: A = -0.5 rand, delta = 0.5 rand, delta_bias = 0.5 rand, the rest randn."""
    dtype, b, d, N, L, G, has_D, has_z, has_bias, softplus, last_state, block_l = SCAN_CASES[name]
    gen = torch.Generator().manual_seed(0)
    BC_shape = (b, N, L) if G is None else (b, G, N, L)
    tensors = {
        "u": torch.randn(b, d, L, generator=gen).to(dtype),
        "delta": (0.5 * torch.rand(b, d, L, generator=gen)).to(dtype),
        "A": -0.5 * torch.rand(d, N, generator=gen),
        "B": torch.randn(BC_shape, generator=gen).to(dtype),
        "C": torch.randn(BC_shape, generator=gen).to(dtype),
        "D": torch.randn(d, generator=gen) if has_D else None,
        "z": torch.randn(b, d, L, generator=gen).to(dtype) if has_z else None,
        "delta_bias": 0.5 * torch.rand(d, generator=gen) if has_bias else None,
    }
    options = dict(delta_softplus=softplus, return_last_state=last_state)
    grad_out = torch.randn(b, d, L, generator=gen).to(dtype)
    return tensors, options, block_l, grad_out


def run_scan(scan, tensors, options, grad_out, **extra):
    """Forward + backward of ``scan``; returns {"out", "last_state", "d<name>"} on the CPU."""
    leaves = {k: (v.detach().clone().requires_grad_() if v is not None else None) for k, v in tensors.items()}
    result = scan(**leaves, **options, **extra)
    out, last_state = result if options["return_last_state"] else (result, None)
    out.backward(grad_out.to(out.device))
    found = {"out": out.detach().cpu(), "last_state": last_state.detach().cpu() if last_state is not None else None}
    found.update({"d" + k: v.grad.cpu() for k, v in leaves.items() if v is not None})
    return found


def cross_scan_definition(x):
    """(B, C, H, W) -> (B, 4, C, H*W): row-major flatten, transpose-flatten, and both flipped."""
    rows, columns = x.flatten(2), x.transpose(2, 3).flatten(2)
    return torch.stack([rows, columns, rows.flip(-1), columns.flip(-1)], dim=1)


def cross_merge_definition(ys, H, W):
    """(B, 4, C, H*W) -> (B, C, H*W): un-flip, un-transpose and sum, in the order (0 + 2) + (1 + 3)."""
    B, _, C, L = ys.shape
    rows = ys[:, 0] + ys[:, 2].flip(-1)
    columns = ys[:, 1] + ys[:, 3].flip(-1)
    return rows + columns.view(B, C, W, H).transpose(2, 3).reshape(B, C, L)


def make_cross_inputs(name):
    B, C, H, W, dtype = CROSS_SHAPES[name]
    gen = torch.Generator().manual_seed(1)
    return {"x": torch.randn(B, C, H, W, generator=gen).to(dtype),
            "ys": torch.randn(B, 4, C, H * W, generator=gen).to(dtype),
            "grad_scan": torch.randn(B, 4, C, H * W, generator=gen).to(dtype),
            "grad_merge": torch.randn(B, C, H * W, generator=gen).to(dtype)}


def run_cross(scan, merge, inputs, device="cpu"):
    """Forward + backward of a cross scan and a cross merge; returns outputs and input gradients on the CPU."""
    x = inputs["x"].to(device).requires_grad_()
    ys = inputs["ys"].to(device).requires_grad_()
    H, W = x.shape[2:]
    scanned, merged = scan(x), merge(ys, H, W)
    scanned.backward(inputs["grad_scan"].to(device))
    merged.backward(inputs["grad_merge"].to(device))
    return {k: v.detach().cpu() for k, v in
            dict(scanned=scanned, merged=merged, dx=x.grad, dys=ys.grad).items()}


def run_triton_worker(results_path):
    """Subprocess body: runs every case through the Triton ops and saves what they return."""
    from nnunetv2_mamba.ops.cross_scan_triton import cross_merge_triton, cross_scan_triton
    from nnunetv2_mamba.ops.scan_triton import selective_scan_triton

    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = {"device": device}
    for name in SCAN_CASES:
        tensors, options, block_l, grad_out = make_scan_inputs(name)
        tensors = {k: v.to(device) if v is not None else None for k, v in tensors.items()}
        results[name] = run_scan(selective_scan_triton, tensors, options, grad_out, block_l=block_l)
    for name in CROSS_SHAPES:
        results["cross_" + name] = run_cross(cross_scan_triton, cross_merge_triton, make_cross_inputs(name), device)
    torch.save(results, results_path)


@pytest.fixture(scope="module")
def triton_results(tmp_path_factory):
    return run_worker(__file__, tmp_path_factory.mktemp("triton") / "results.pt", timeout=900)


def tolerances(dtype, has_z):
    """mamba-ssm's test_selective_scan tolerances (nnunetv2_mamba/ops/tolerances.py), per output and gradient:
    name -> (rtol, atol). Why they bound the fp32 error (and for half inputs the final rounding to fp16/bf16, one
    ulp): tests/helpers.py."""
    per_input = scan_tolerances(dtype, has_z)
    return {"out": per_input.pop("out"), "last_state": per_input.pop("state"),
            **{"d" + name: tolerance for name, tolerance in per_input.items()}}


@pytest.mark.parametrize("name", SCAN_CASES)
def test_selective_scan_triton_matches_reference(name, triton_results):
    tensors, options, _, grad_out = make_scan_inputs(name)
    expected = run_scan(selective_scan_reference, tensors, options, grad_out)
    found = triton_results[name]
    assert found["out"].dtype == tensors["delta"].dtype
    assert set(found) == set(expected)
    for key, (rtol, atol) in tolerances(tensors["delta"].dtype, tensors["z"] is not None).items():
        if expected.get(key) is None:
            assert found.get(key) is None, key
            continue
        assert found[key].dtype == expected[key].dtype, key
        torch.testing.assert_close(found[key], expected[key], rtol=rtol, atol=atol, msg=lambda m: f"{key}: {m}")


@pytest.mark.parametrize("name", CROSS_SHAPES)
def test_cross_scan_and_merge_triton_equal_torch_definitions_exactly(name, triton_results):
    expected = run_cross(cross_scan_definition, cross_merge_definition, make_cross_inputs(name))
    found = triton_results["cross_" + name]
    for key in expected:  # values moved, and the merge adds (0 + 2) + (1 + 3) in the definition's order: exact
        torch.testing.assert_close(found[key], expected[key], rtol=0, atol=0, msg=lambda m: f"{key}: {m}")


class _CurrentDevice:
    """Stands in for torch.cuda.device: records which device is current while the block runs."""
    stack = []

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        self.stack.append(self.device)

    def __exit__(self, *exception):
        self.stack.pop()


def test_every_kernel_launches_under_its_input_tensors_device(monkeypatch):
    """Triton launches on the current CUDA device, whatever device the pointers belong to: every launch (scan
    forward and backward, 2D and 3D cross scan and merge) happens inside torch.cuda.device(input.device)."""
    from nnunetv2_mamba.ops import cross_scan_3d_triton, cross_scan_triton, scan_triton
    launches = []

    class Kernel:
        def __init__(self, name):
            self.name = name

        def __getitem__(self, grid):
            return lambda *args, **kwargs: launches.append((self.name, list(_CurrentDevice.stack)))

    monkeypatch.setattr(torch.cuda, "device", _CurrentDevice)
    kernels = {scan_triton: ("_selective_scan_fwd_kernel", "_selective_scan_bwd_kernel"),
               cross_scan_triton: ("_cross_scan_kernel", "_cross_merge_kernel"),
               cross_scan_3d_triton: ("_cross_scan_3d_kernel", "_cross_merge_3d_kernel")}
    for module, names in kernels.items():
        monkeypatch.setattr(module, "require_triton_device", lambda *tensors: None)  # CPU tensors stand in
        for name in names:
            monkeypatch.setattr(module, name, Kernel(name))
    tensors, options, block_l, grad_out = make_scan_inputs("G2_all_options")
    run_scan(scan_triton.selective_scan_triton, tensors, options, grad_out, block_l=block_l)
    x = torch.randn(1, 2, 3, 4)
    cross_scan_triton.cross_scan_triton(x.requires_grad_()).sum().backward()
    cross_scan_3d_triton.cross_scan_3d_triton(x.unsqueeze(2).requires_grad_(), 6).sum().backward()
    assert [name for name, _ in launches] == [name for names in kernels.values() for name in names]
    assert all(devices == [torch.device("cpu")] for _, devices in launches), launches


TINY_CALLS = """
import torch
from nnunetv2_mamba.ops import cross_scan_triton, scan_triton
x = torch.zeros(1, 1, 3)
calls = {"scan": lambda: scan_triton.selective_scan_triton(x, x, torch.zeros(1, 1), x, x),
         "cross_scan": lambda: cross_scan_triton.cross_scan_triton(torch.zeros(1, 1, 2, 2)),
         "cross_merge": lambda: cross_scan_triton.cross_merge_triton(torch.zeros(1, 4, 1, 4), 2, 2)}
for name, call in calls.items():
    try:
        call()
    except RuntimeError as error:
        print(name, "|", error)
"""


def run_tiny_calls(prelude, env):
    done = subprocess.run([sys.executable, "-c", prelude + TINY_CALLS], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_without_triton_the_modules_import_and_calls_say_why():
    lines = run_tiny_calls("import sys\nsys.modules['triton'] = None\n"
                           "from nnunetv2_mamba.ops.scan_triton import TRITON_AVAILABLE\n"
                           "assert not TRITON_AVAILABLE\n", dict(os.environ))
    assert len(lines) == 3
    assert all("Triton backend is unavailable (triton cannot be imported" in line for line in lines), lines


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-tensor error of a machine without CUDA")
def test_cpu_tensors_without_the_interpreter_are_refused_clearly():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    lines = run_tiny_calls("", env)
    assert len(lines) == 3
    assert all("needs CUDA tensors" in line and "TRITON_INTERPRET=1" in line for line in lines), lines


OFFLINE_COMPILE = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from nnunetv2_mamba.ops import cross_scan_triton, scan_triton

def compile_for_sm80(kernel, element_type, **constexprs):
    signature = {name: "constexpr" if name in constexprs else ("*" + element_type if name.endswith("_ptr") else "i32")
                 for name in kernel.arg_names}
    compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs),
                              target=GPUTarget("cuda", 80, 32))
    assert compiled.asm["cubin"], kernel
    print(kernel.__name__, element_type)

for element_type, on in (("bf16", True), ("fp32", False)):
    for kernel in (scan_triton._selective_scan_fwd_kernel, scan_triton._selective_scan_bwd_kernel):
        compile_for_sm80(kernel, element_type, HAS_D=on, HAS_Z=on, HAS_DELTA_BIAS=on, DELTA_SOFTPLUS=on,
                         BLOCK_D=4, BLOCK_N=16, BLOCK_L=32)
for kernel in (cross_scan_triton._cross_scan_kernel, cross_scan_triton._cross_merge_kernel):
    compile_for_sm80(kernel, "fp16", BLOCK=1024)
"""


def test_kernels_compile_for_a_real_gpu_without_one():
    """The interpreter does not type-check like the compiler does: compile every kernel to an sm_80 cubin."""
    assert len(compile_offline(OFFLINE_COMPILE)) == 6


if __name__ == "__main__":
    run_triton_worker(sys.argv[1])

"""Triton 3D cross scan/merge against the torch definitions, bit for bit, forward and backward.

As in test_ops_triton.py, the kernels run in ONE subprocess (this file run as a script): under
``TRITON_INTERPRET=1`` on a machine without CUDA, compiled on the GPU otherwise; the assertions run here.
"""
import sys

import pytest
import torch

pytest.importorskip("triton", reason="triton cannot be imported; the Triton backend is optional")

from nnunetv2_mamba.ops import cross_merge_3d, cross_scan_3d  # noqa: E402
from triton_runs import compile_offline, run_worker  # noqa: E402

CASES = {  # name: (B, C, D, H, W, K, dtype)
    "six_odd_sizes": (2, 3, 3, 5, 4, 6, torch.float32),
    "four_one_slice": (1, 2, 1, 6, 7, 4, torch.float32),
    "two_float16": (1, 2, 4, 3, 5, 2, torch.float16),
    "six_more_than_one_block": (1, 1, 9, 11, 13, 6, torch.float32),
}


def make_inputs(name):
    B, C, D, H, W, K, dtype = CASES[name]
    gen = torch.Generator().manual_seed(2)
    L = D * H * W
    return {"x": torch.randn(B, C, D, H, W, generator=gen).to(dtype), "K": K,
            "ys": torch.randn(B, K, C, L, generator=gen).to(dtype),
            "grad_scan": torch.randn(B, K, C, L, generator=gen).to(dtype),
            "grad_merge": torch.randn(B, C, L, generator=gen).to(dtype)}


def run_cross(scan, merge, inputs, device="cpu"):
    """Forward + backward of a 3D cross scan and merge; outputs and input gradients on the CPU."""
    x = inputs["x"].to(device).requires_grad_()
    ys = inputs["ys"].to(device).requires_grad_()
    scanned, merged = scan(x, inputs["K"]), merge(ys, tuple(x.shape[2:]))
    scanned.backward(inputs["grad_scan"].to(device))
    merged.backward(inputs["grad_merge"].to(device))
    return {k: v.detach().cpu() for k, v in dict(scanned=scanned, merged=merged, dx=x.grad, dys=ys.grad).items()}


def run_triton_worker(results_path):
    from nnunetv2_mamba.ops.cross_scan_3d_triton import cross_merge_3d_triton, cross_scan_3d_triton

    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = {name: run_cross(cross_scan_3d_triton, cross_merge_3d_triton, make_inputs(name), device)
               for name in CASES}
    torch.save(results, results_path)


@pytest.fixture(scope="module")
def triton_results(tmp_path_factory):
    return run_worker(__file__, tmp_path_factory.mktemp("triton3d") / "results.pt", timeout=600)


@pytest.mark.parametrize("name", CASES)
def test_triton_3d_cross_scan_and_merge_equal_the_torch_functions_exactly(name, triton_results):
    expected = run_cross(cross_scan_3d, cross_merge_3d, make_inputs(name))
    for key in expected:
        torch.testing.assert_close(triton_results[name][key], expected[key], rtol=0, atol=0,
                                   msg=lambda m: f"{key}: {m}")


OFFLINE_COMPILE = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from nnunetv2_mamba.ops import cross_scan_3d_triton

for kernel in (cross_scan_3d_triton._cross_scan_3d_kernel, cross_scan_3d_triton._cross_merge_3d_kernel):
    for K in (6,):  # every branch of both kernels
        signature = {name: "constexpr" if name in ("K", "BLOCK") else ("*bf16" if name.endswith("_ptr") else "i32")
                     for name in kernel.arg_names}
        compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs={"K": K, "BLOCK": 1024}),
                                  target=GPUTarget("cuda", 80, 32))
        assert compiled.asm["cubin"], kernel
        print(kernel.__name__, K)
"""


def test_kernels_compile_for_a_real_gpu_without_one():
    """The interpreter does not type-check like the compiler does: compile both kernels to sm_80 cubins."""
    assert len(compile_offline(OFFLINE_COMPILE)) == 2


if __name__ == "__main__":
    run_triton_worker(sys.argv[1])

"""The compiled CPU selective scan (backend ``cpu``) against the reference loop, the torch scan and gradcheck; its
layouts, its half-precision handling, and what happens where it cannot be built.

Tolerances. The kernel and the fp32 reference evaluate the same recurrence in fp32 and differ only in rounding:
the order of the sums (over N in y, over channels in dB/dC, over time in dA/dD/d(delta_bias)), fused
multiply-adds where the CPU has them (AVX2/AVX-512 vs none), the vector width (which only changes the grouping of
the channel sums), the thread count (only the grouping of the dB/dC partial sums), the reference's exp (ATen's,
vectorised or not by ATEN_CPU_CAPABILITY) against the kernel's own (about 1 ulp). Each of these is a relative
error of a few eps = 2^-24 per operation; the decays exp(delta A) <= 1 keep a step's error from growing along
the sequence, so the states and y stay within a few eps times the number of terms summed (N = 16, or one term per
position for the reductions over time: up to 2 x 4096 here) relative to the magnitude of those terms, below
1e-3 relative. mamba-ssm's own fp32 tolerances (rtol 6e-4 .. 3e-3) are of that size and are used unchanged, so
they hold on every x86 CPU, with one thread or many. In fp64 the same argument gives about 1e-13; the fp64
kernel is compared with the fp64 torch scan at 1e-10, which no formula mistake survives.
"""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from nnunetv2_mamba.ops import scan_cpu
from nnunetv2_mamba.ops.backends import availability
from nnunetv2_mamba.ops.scan_cpu import selective_scan_cpu
from nnunetv2_mamba.ops.scan_torch import selective_scan_torch
from helpers import make_scan_inputs as make_inputs
from scan_checks import (OPTION_COMBINATIONS, TOLERANCES, assert_autocast_runs_the_scan_in_fp32,
                         assert_half_inputs_compute_in_fp32,
                         assert_matches_reference, saved_tensor_sizes)

KERNEL = availability("cpu")
needs_kernel = pytest.mark.skipif(not KERNEL.available, reason=f"cpu backend unavailable: {KERNEL.reason}")


@pytest.fixture
def short_segments(monkeypatch):
    """Checkpoint every 8 positions, so that short sequences cross many segments of the backward."""
    monkeypatch.setattr(scan_cpu, "SEGMENT", 8)


@needs_kernel
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("seqlen", [128, 256, 512, 1024, 2048, 4096])
def test_mamba_grid_all_options(seqlen, groups):
    """mamba-ssm's fp32 test grid: variable B/C ((b, N, L) for one group), D, z, delta_bias, softplus, state."""
    assert_matches_reference(make_inputs(seqlen, groups, bc_3d=groups == 1), scan=selective_scan_cpu)


@needs_kernel
@pytest.mark.parametrize("has_D,has_z,has_delta_bias,delta_softplus,return_last_state", OPTION_COMBINATIONS)
def test_option_combinations(has_D, has_z, has_delta_bias, delta_softplus, return_last_state):
    inputs = make_inputs(256, groups=2, has_D=has_D, has_z=has_z, has_delta_bias=has_delta_bias)
    assert_matches_reference(inputs, delta_softplus, return_last_state, scan=selective_scan_cpu)


@needs_kernel
@pytest.mark.parametrize("seqlen", [1, 2, 7, 8, 9, 63, 64, 65, 129])
@pytest.mark.parametrize("bc_3d", [True, False])
def test_lengths_around_segment_boundaries(seqlen, bc_3d, short_segments):
    assert_matches_reference(make_inputs(seqlen, groups=1, bc_3d=bc_3d), scan=selective_scan_cpu)


@needs_kernel
@pytest.mark.parametrize("dim,groups", [(1, 1), (6, 3), (20, 2), (48, 1), (40, 2), (64, 4)])
def test_channels_in_partial_and_several_blocks_per_group(dim, groups):
    """Blocks are 16 channels of one group: a group of 10 or 20 channels ends in a partial block."""
    assert_matches_reference(make_inputs(100, groups=groups, dim=dim, dstate=5), scan=selective_scan_cpu)


@needs_kernel
@pytest.mark.parametrize("threads", [1, 3])
def test_thread_count_changes_only_the_grouping_of_sums(threads):
    """Forward items are independent: bitwise equal for any thread count; the backward's dB/dC partial sums are
    grouped by thread count, so equal up to rounding."""
    inputs = make_inputs(2048, groups=2, dim=64)  # enough work for 8 threads (scan_cpu.GRAIN)
    grad_out = torch.randn(inputs["u"].shape, generator=torch.Generator().manual_seed(1))
    previous = torch.get_num_threads()
    results = []
    try:
        for count in (2, threads):
            torch.set_num_threads(count)
            out = selective_scan_cpu(**inputs, delta_softplus=True)
            results.append((out, torch.autograd.grad(out, [inputs["B"], inputs["u"]], grad_out)))
    finally:
        torch.set_num_threads(previous)
    (out_a, (dB_a, du_a)), (out_b, (dB_b, du_b)) = results
    assert torch.equal(out_a, out_b) and torch.equal(du_a, du_b)
    torch.testing.assert_close(dB_a, dB_b, rtol=TOLERANCES["B"][0], atol=TOLERANCES["B"][1])


@needs_kernel
def test_float64_equals_the_float64_torch_scan(short_segments):
    inputs = {k: (v.detach().double().requires_grad_() if v is not None else None)
              for k, v in make_inputs(70, groups=2, dim=20, dstate=5).items()}
    grad_out = torch.randn(inputs["u"].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    results = []
    for scan in (selective_scan_cpu, selective_scan_torch):
        out, state = scan(**inputs, delta_softplus=True, return_last_state=True)
        results.append([out, state, *torch.autograd.grad(out, list(inputs.values()), grad_out)])
    assert results[0][0].dtype == results[0][1].dtype == torch.float64
    for name, ours, theirs in zip(["out", "state", *inputs], *results):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10, msg=lambda m: f"{name}: {m}")


@needs_kernel
@pytest.mark.parametrize("seqlen,groups,bc_3d", [(11, 2, False), (19, 1, True)])
def test_gradcheck_float64(seqlen, groups, bc_3d, short_segments):
    torch.manual_seed(0)
    b, d, N = 2, 4, 3
    bc = (b, N, seqlen) if bc_3d else (b, groups, N, seqlen)
    args = (torch.randn(b, d, seqlen), 0.5 * torch.rand(b, d, seqlen), -0.5 * torch.rand(d, N), torch.randn(bc),
            torch.randn(bc), torch.randn(d), torch.randn(b, d, seqlen), 0.5 * torch.rand(d))
    args = tuple(a.double().requires_grad_() for a in args)
    assert torch.autograd.gradcheck(lambda *a: selective_scan_cpu(*a, delta_softplus=True), args)
    assert torch.autograd.gradcheck(lambda *a: selective_scan_cpu(*a[:5], D=a[5]), args[:6])


@needs_kernel
def test_channels_last_views_are_read_in_place_and_answered_in_kind():
    """SS2D's layout: (b, d, L) views of (b, L, d) memory for u, delta, z, and (b, G, N, L) views of (b, L, G, N)
    memory for B, C; y comes back as such a view. Channels-first u gives contiguous y."""
    inputs = make_inputs(130, groups=2)
    channels_last = {k: (v.detach().transpose(-1, -2).contiguous().transpose(-1, -2).requires_grad_()
                         if k in ("u", "delta", "z") else v) for k, v in inputs.items()}
    channels_last["B"], channels_last["C"] = (
        inputs[k].detach().permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1).requires_grad_() for k in "BC")
    assert channels_last["u"].stride(1) == 1 and channels_last["B"].stride(2) == 1
    out = selective_scan_cpu(**channels_last, delta_softplus=True)
    assert out.stride(1) == 1 and out.transpose(1, 2).is_contiguous()
    assert selective_scan_cpu(**inputs, delta_softplus=True).is_contiguous()
    assert_matches_reference(channels_last, scan=selective_scan_cpu)


@needs_kernel
def test_other_strides_are_copied_once():
    inputs = make_inputs(260, groups=2)
    strided = {k: v.detach().repeat_interleave(2, dim=-1)[..., ::2].requires_grad_() for k, v in inputs.items()}
    assert strided["u"].stride() == (2 * 4 * 260, 2 * 260, 2) and strided["D"].stride() == (2,)
    assert_matches_reference(strided, scan=selective_scan_cpu)


@needs_kernel
def test_whole_range_of_step_sizes_and_decays():
    """Softplus on both sides of its threshold 20 and far into its exp(x) tail; decays from 1 down to exp(-150)
    (through fp32's denormals to zero): the kernel's own exp and log1p against ATen's."""
    inputs = make_inputs(200, groups=2)
    with torch.no_grad():
        inputs["delta"].copy_(torch.linspace(-30, 30, 200).expand_as(inputs["delta"]))
        inputs["A"].copy_(-torch.logspace(-3, 0.7, inputs["A"].numel()).view_as(inputs["A"]))
    assert_matches_reference(inputs, scan=selective_scan_cpu)


@needs_kernel
def test_non_finite_inputs_give_non_finite_outputs():
    """The trainers' non-finite step guard needs NaN to reach the loss, as it does through the torch scan."""
    inputs = make_inputs(40, groups=2)
    with torch.no_grad():
        inputs["u"][0, 1, 10] = float("nan")
    out = selective_scan_cpu(**inputs, delta_softplus=True)
    assert out[0, 1, 10:].isnan().all() and not out[1].isnan().any() and not out[0, 1, :10].isnan().any()
    out.sum().backward()
    assert inputs["B"].grad.isnan().any() and inputs["A"].grad.isnan().any()


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_fp32(dtype):
    assert_half_inputs_compute_in_fp32(dtype, backend="cpu")


@needs_kernel
def test_autocast_runs_the_scan_in_fp32():
    assert_autocast_runs_the_scan_in_fp32(backend="cpu")


@needs_kernel
def test_equals_the_torch_scan_at_an_ss2d_shape():
    """A VSS block's scan: 4 directions of 24 channels (grouped B/C), N = 16, 14 x 14 positions, channels-last."""
    generator = torch.Generator().manual_seed(0)
    b, K, D, N, L = 2, 4, 24, 16, 196
    xs, dts = torch.randn(b, L, K * D, generator=generator), 0.5 * torch.randn(b, L, K * D, generator=generator)
    Bs, Cs = (torch.randn(b, L, K, N, generator=generator).permute(0, 2, 3, 1) for _ in range(2))
    inputs = dict(u=xs.transpose(1, 2), delta=dts.transpose(1, 2), A=-torch.rand(K * D, N, generator=generator),
                  B=Bs, C=Cs, D=torch.ones(K * D), delta_bias=torch.rand(K * D, generator=generator) - 4)
    inputs = {k: v.requires_grad_() for k, v in inputs.items()}
    grad_out = torch.randn(b, K * D, L, generator=generator)
    results = []
    for scan in (selective_scan_cpu, selective_scan_torch):
        out = scan(**inputs, delta_softplus=True)
        results.append([out, *torch.autograd.grad(out, list(inputs.values()), grad_out)])
    for name, ours, theirs in zip(["out", *inputs], *results):
        rtol, atol = TOLERANCES.get(name, TOLERANCES["out"])
        torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


@needs_kernel
def test_saves_its_inputs_and_a_state_every_segment():
    """Memory stays linear: nothing saved for the backward is bigger than the largest input (the states are
    N / SEGMENT of u at whole 16-channel blocks), and a no-grad forward saves no states at all."""
    inputs = make_inputs(512, groups=2, dim=32, dstate=16)
    out = selective_scan_cpu(**inputs, delta_softplus=True)
    largest_input = max(v.numel() for v in inputs.values() if v is not None)
    sizes = saved_tensor_sizes(out)
    assert sizes and max(sizes) <= largest_input
    with torch.no_grad():
        assert selective_scan_cpu(**inputs, delta_softplus=True).grad_fn is None


def test_cuda_or_other_tensors_are_refused():
    u = torch.empty(1, 2, 3, device="meta")
    with pytest.raises(ValueError, match="takes CPU tensors, got meta tensors"):
        selective_scan_cpu(u, u, torch.empty(2, 4, device="meta"), torch.empty(1, 4, 3, device="meta"),
                           torch.empty(1, 4, 3, device="meta"))


def run_fresh(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "nnUNet_mamba_scan": "", **env})


FALLBACK = """
    import argparse, torch
    from nnunetv2_mamba.doctor import run
    from nnunetv2_mamba.ops import selective_scan, selective_scan_reference
    args = (torch.randn(1, 2, 9), torch.rand(1, 2, 9), -torch.rand(2, 3), torch.randn(1, 3, 9), torch.randn(1, 3, 9))
    torch.testing.assert_close(selective_scan(*args), selective_scan_reference(*args))
    run(argparse.Namespace(backend=None))
"""


@pytest.mark.parametrize("compiler,reason", [
    ("/nonexistent/cc", "no C compiler found (looked for /nonexistent/cc"),
    ("broken", "broken-cc could not compile the kernel: kernel.c:1: error: out of luck")])
def test_without_a_working_compiler_the_backend_is_unavailable_and_auto_uses_torch(tmp_path, compiler, reason):
    if compiler == "broken":
        script = tmp_path / "broken-cc"
        script.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then echo broken 1.0; exit 0; fi\n"
                          "echo 'kernel.c:1: error: out of luck' >&2\nexit 1\n")
        script.chmod(0o755)
        compiler = str(script)
    result = run_fresh(FALLBACK, CC=compiler, XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    assert "chosen on cpu: torch (auto on cpu" in result.stdout
    assert f"cpu     unavailable: {reason}" in result.stdout
    result = run_fresh(FALLBACK.replace("selective_scan(*args)", "selective_scan(*args, backend='cpu')"),
                       CC=compiler, XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert result.returncode and "selective-scan backend 'cpu' is unavailable" in result.stderr


@needs_kernel
def test_compiled_once_into_the_cache_then_loaded_with_one_openmp_runtime_and_denormals_kept(tmp_path):
    """A fresh cache compiles; the next process loads the same file. The library shares torch's libgomp (one
    thread pool) and does not switch on flush-to-zero for the process (as -ffast-math's crtfastmath would)."""
    code = """
        import torch
        from nnunetv2_mamba.ops import cpu_kernel
        library = cpu_kernel.load()
        with open("/proc/self/maps") as maps:
            runtimes = {line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line}
        print("runtimes", len(runtimes), sorted(runtimes))
        print("denormal", (torch.tensor([1e-39]) / 2).item() > 0)
        print("library", library._name)
    """
    results = [run_fresh(code, XDG_CACHE_HOME=str(tmp_path)) for _ in range(2)]
    assert all(r.returncode == 0 for r in results), results[0].stderr + results[1].stderr
    first, second = (r.stdout for r in results)
    assert "runtimes 1 " in first and "denormal True" in first
    library = first.split("library ")[1].strip()
    assert library.startswith(str(tmp_path)) and library == second.split("library ")[1].strip()
    assert len(list(tmp_path.rglob("*.so"))) == 1

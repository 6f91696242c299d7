"""The registered scan operator ``torch.ops.nnunetv2_mamba.selective_scan``: torch.library.opcheck on the cpu and
torch backends (with and without gradients, contiguous and channels-last inputs), the Meta kernel's strides equal
to the real output's, and SS2D under torch.compile's tracer: no graph break, the backend logged once."""
import logging

import pytest
import torch

from nnunetv2_mamba.ops import backends
from nnunetv2_mamba.ops.scan_op import output_strides
from nnunetv2_mamba.nets import SS2D

pytestmark = pytest.mark.skipif(not hasattr(torch.library, "opcheck"), reason="torch.library.opcheck: torch >= 2.4")
SCAN_OP = torch.ops.nnunetv2_mamba.selective_scan.default
BACKENDS = [name for name in ("cpu", "torch") if backends.availability(name).available]


def op_arguments(layout: str, backend: str, requires_grad: bool = False) -> tuple:
    """(u, delta, A, B, C, D, z, delta_bias, softplus, backend): b=2, d=8, L=6, N=4, two B/C groups; u, delta and z
    (b, d, L) contiguous or views of channels-last (b, L, d) memory, as SS2D's channels-last path passes them."""
    generator = torch.Generator().manual_seed(0)

    def sequence(scale=1.0, offset=0.0):
        if layout == "contiguous":
            return scale * torch.rand(2, 8, 6, generator=generator) + offset
        return (scale * torch.rand(2, 6, 8, generator=generator) + offset).transpose(1, 2)
    tensors = (sequence(2, -1), sequence(0.5), -0.5 * torch.rand(8, 4, generator=generator),
               torch.randn(2, 2, 4, 6, generator=generator), torch.randn(2, 2, 4, 6, generator=generator),
               torch.randn(8, generator=generator), sequence(2, -1), 0.5 * torch.rand(8, generator=generator))
    return (*(t.requires_grad_(requires_grad) for t in tensors), True, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_passes_every_test_util(backend, layout, requires_grad):
    """Schema, autograd registration, the fake (Meta) kernel against the real output (sizes, strides, dtype,
    requires_grad), and the operator under AOTAutograd, gradients included, against eager."""
    results = torch.library.opcheck(SCAN_OP, op_arguments(layout, backend, requires_grad), raise_exception=False)
    assert results == {name: "SUCCESS" for name in results} and len(results) == 4, results


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_the_meta_kernel_gives_the_real_strides(backend, layout):
    arguments = op_arguments(layout, backend)
    real = SCAN_OP(*arguments)
    meta = SCAN_OP(*(t.to("meta") if isinstance(t, torch.Tensor) else t for t in arguments))
    assert (meta.shape, meta.stride(), meta.dtype) == (real.shape, real.stride(), real.dtype)
    assert real.stride() == output_strides(arguments[0]) == ((48, 1, 8) if layout == "channels_last" else (48, 6, 1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_ss2d_traces_without_a_graph_break_and_logs_the_backend_once(monkeypatch, caplog, backend, grad, layout):
    """The backend is chosen (probes, smoke test, log line) eagerly when torch.compile meets it, not traced; the
    scan is one operator node (its backward one more), so Dynamo traces the whole layer into one graph, in either
    sequence layout (channels-first is the GPU kernels' path, with the torch cross scans off CUDA)."""
    monkeypatch.setenv("nnUNet_mamba_scan", backend)
    monkeypatch.setattr(backends, "_CHOSEN", {})
    monkeypatch.setitem(backends.LAYOUTS, backend, layout)
    backends._log_choice.cache_clear()
    torch.manual_seed(0)
    layer, x = SS2D(8), torch.randn(1, 6, 5, 8)
    torch._dynamo.reset()
    with caplog.at_level(logging.INFO, logger="nnunetv2_mamba"), torch.set_grad_enabled(grad):
        explanation = torch._dynamo.explain(layer)(x)
        explanation_again = torch._dynamo.explain(layer)(x)
    torch._dynamo.reset()
    assert (explanation.graph_break_count, explanation.graph_count) == (0, 1), explanation.break_reasons
    assert explanation_again.graph_break_count == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "nnunetv2_mamba"]
    assert len(lines) == 1 and f"selective scan backend '{backend}'" in lines[0], lines

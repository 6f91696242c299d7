"""What a benchmark, a GPU check or the benchmark's cost table measures, and exactly what each number means.

- :func:`~.memory.peak_memory`: ``base_mib`` is what was in use when the block began, ``peak_mib`` the most in use
  during it, ``extra_mib`` = peak - base. On CUDA: torch's allocator (``memory_allocated`` at entry,
  ``max_memory_allocated`` with its peak reset at entry), so tensors alive before the block (weights built before
  it) count in both. On the CPU: the process's resident set size (``/proc/self/statm`` at entry, ``ru_maxrss`` at
  exit, the Python and torch runtime included); ru_maxrss never falls, so the peak is the block's own only in a
  process whose earlier peak was lower: measure in a fresh process.
- :func:`~.timing.timed_runs`: seconds of each timed call after untimed warm-up calls; on CUDA between two CUDA
  events (the device's time for the work the call queued), on the CPU by ``time.perf_counter``.
- :func:`~.flops.count_flops`: FLOPs of one forward pass, from ``torch.utils.flop_counter.FlopCounterMode``
  (convolutions, matmuls, attention; one multiply-add = 2 FLOPs; elementwise operations not counted) plus the
  selective scan's registered formula, 9·B·L·D·N per call (nnunetv2_mamba/ops/scan_op.py).
- :mod:`.networks`: the networks every benchmark and GPU check measures (MambaUNet, VMUNet, and nnU-Net's
  PlainConvUNet as its default planner builds it for a patch) and nnU-Net's training step on a fixed batch.
"""
from nnunetv2_mamba.measurement.flops import count_flops
from nnunetv2_mamba.measurement.memory import PeakMemory, peak_memory
from nnunetv2_mamba.measurement.timing import median, timed_runs

__all__ = ["PeakMemory", "count_flops", "median", "peak_memory", "timed_runs"]

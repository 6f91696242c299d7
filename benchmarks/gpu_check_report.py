"""gpu_check.py's report: one row per case of a check, one markdown table of every row (plus the machine line, the
legend and captured logs) and a JSON file of the raw numbers."""
from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
WHOLE_CHECK = "(whole check)"


@dataclass
class Row:
    """One line of the report: a case of a check, its status, what was measured (text and raw numbers)."""
    check: str
    case: str
    status: str
    result: str = ""
    time: str = ""
    data: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return finite_json(dataclasses.asdict(self))


def print_row(row: Row) -> None:
    print(f"{row.status} {row.check}: {row.case} | {row.result} | {row.time}", flush=True)

LEGEND = """\
- scan: forward + backward of one scan; the reference is the torch scan in fp32 on the same rounded inputs (for the
  torch scan itself, the sequential reference loop). abs = max |found - expected|, rel = abs / max |expected|,
  "x tolerance" = max |found - expected| / (atol + rtol |expected|) over the output and every gradient
  (PASS <= 1; mamba-ssm's test_selective_scan tolerances: fp32 6e-4/2e-3, fp16 3e-3/5e-3, bf16 3e-2/5e-2 for the
  output, wider for du and ddelta, 1e-3 for the weights' gradients).
- cross_scan: fused Triton kernels against the torch autograd functions (moves must be equal, sums within
  rounding). ss2d: one SS2D layer with a kernel backend against the torch scan's channels-last path, fp32.
- nets_2d: nnU-Net's AMP train_step (autocast, GradScaler, Dice+CE with deep supervision, SGD, clipping at 12) on a
  fixed random batch; peak = torch.cuda.max_memory_allocated from building the network to the last step.
- times: CUDA events around each call after warm-up, median (nnunetv2_mamba/measurement says what each number
  means)."""


def machine_line(machine: dict | None) -> str:
    if not machine:
        return "machine: unknown (the environment check did not report)"
    packages = machine["packages"]
    kernel = "kernel built" if machine["mamba_ssm_kernel"] else "kernel not built"
    gpu = (f"{machine['gpu']} (compute capability {machine['capability']}, {machine['gpu_memory_gib']} GiB), "
           f"driver {machine['driver'] or 'unknown'}" if machine["gpu"] else "no GPU")
    return (f"{gpu}, CUDA {machine['cuda_runtime']} (torch's), torch {packages['torch']}, triton {packages['triton']}, "
            f"mamba-ssm {packages['mamba-ssm']} ({kernel}), nnunetv2 {packages['nnunetv2']}, CPU {machine['cpu']} "
            f"({machine['cpu_cores']} cores), Python {machine['python']}")


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def counts(rows: list[Row]) -> str:
    tally = Counter(row.status for row in rows)
    return ", ".join(f"{tally[status]} {status}" for status in (PASS, FAIL, SKIP))


def markdown(rows: list[Row], machine: dict | None, command: str, wall_s: float, check_seconds: dict) -> str:
    per_check = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in check_seconds.items())
    lines = ["# GPU check", "", f"`{command}`", "", f"Machine: {machine_line(machine)}.", "",
             f"Total wall time {wall_s:.0f} s ({per_check}); {len(rows)} rows: {counts(rows)}.", "",
             "| check | case | status | result | time |", "|---|---|---|---|---|"]
    lines += [f"| {row.check} | {cell(row.case)} | {row.status} | {cell(row.result)} | {cell(row.time)} |"
              for row in rows]
    lines += ["", LEGEND]
    for row in rows:
        if row.data.get("log"):
            lines += ["", f"{row.check}, {row.case}:", "", "```", row.data["log"], "```"]
    return "\n".join(lines) + "\n"


def finite_json(value):
    """JSON has no inf/NaN: they become the strings "inf", "-inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value


def write_reports(path: Path, rows: list[Row], machine: dict | None, settings: dict, command: str, wall_s: float,
                  check_seconds: dict) -> str:
    """Write the markdown to ``path`` and the raw numbers to ``path`` with suffix .json; return the markdown."""
    text = markdown(rows, machine, command, wall_s, check_seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    raw = {"command": command, "wall_seconds": wall_s, "check_seconds": check_seconds, "machine": machine,
           "settings": settings,
           "rows": [dataclasses.asdict(row) for row in rows]}
    path.with_suffix(".json").write_text(json.dumps(finite_json(raw), indent=1))
    return text

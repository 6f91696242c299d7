"""benchmarks/gpu_check.py --dry-run: every check (tests/gpu, one pytest process per check) runs on the CPU (Triton
interpreted) and reports one row per case in one markdown table and a JSON file; a failing case and a crashing
check are FAIL rows, the run goes on, and only the exit status at the end says something failed. Time limits:
pytest-timeout stops one test, the check's process is stopped at its share of the budget."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="the dry run runs the Triton kernels under Triton's interpreter")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "gpu_check.py"
CHECKS = ("environment", "backends", "scan", "cross_scan", "ss2d", "nets_2d", "nets_3d", "triton_backward", "compile",
          "ddp")
STATUSES = ("PASS", "FAIL", "SKIP")


def run_dry(tmp_path: Path, *arguments: str) -> tuple[subprocess.CompletedProcess, Path]:
    output = tmp_path / "table.md"
    # the budget is wall-clock: a generous one, so that a loaded test machine does not cut the checks short
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--budget", "1500", "--output", str(output),
                           *arguments], capture_output=True, text=True, timeout=1800)
    return done, output


def table_rows(markdown: str) -> list[dict]:
    """The report table's rows as {"check", "case", "status", "result", "time"}."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")][1:]  # without the header
    rows = []
    for line in lines:
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows.append(dict(zip(("check", "case", "status", "result", "time"), cells)))
    return rows


@pytest.fixture(scope="module")
def injected_run(tmp_path_factory):
    """One dry run with a failure injected into a scan case and a segmentation fault into the cross_scan check."""
    tmp_path = tmp_path_factory.mktemp("gpu_check")
    done, output = run_dry(tmp_path, "--inject-failure", "scan: torch bfloat16", "--inject-crash", "cross_scan")
    assert output.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, table_rows(output.read_text()), json.loads(output.with_suffix(".json").read_text())


def test_every_check_reports_rows_with_a_status(injected_run):
    done, rows, _ = injected_run
    assert [check for check in CHECKS if not any(row["check"] == check for row in rows)] == []
    assert all(row["status"] in STATUSES for row in rows), rows
    assert "| check | case | status | result | time |" in done.stdout  # the table also goes to stdout


def test_injected_failures_are_fail_rows_and_the_run_goes_on(injected_run):
    done, rows, _ = injected_run
    assert done.returncode == 1, done.stderr[-3000:]
    failed = [row for row in rows if row["status"] == "FAIL"]
    assert [(row["check"], row["case"].split(" on ")[0]) for row in failed] == [
        ("scan", "torch bfloat16"), ("cross_scan", "(whole check)")], failed
    assert "InjectedFailure" in failed[0]["result"]
    assert "(killed by SIGSEGV) after 1 row(s)" in failed[1]["result"]
    scan_cases = [row["case"].split(" on ")[0] for row in rows if row["check"] == "scan" and row["status"] == "PASS"]
    assert "torch float16" in scan_cases  # the case after the failing one ran
    crashed = [row for row in rows if row["check"] == "cross_scan"]
    assert crashed[0]["status"] == "PASS" and crashed[0]["case"].startswith("float32")  # kept from before the crash
    after_crash = [row for row in rows if row["check"] in ("ss2d", "nets_2d", "nets_3d", "triton_backward", "compile")]
    assert after_crash and all(row["status"] in ("PASS", "SKIP") for row in after_crash)


def test_the_dry_run_runs_every_available_backend_and_network(injected_run):
    _, rows, _ = injected_run
    passed = {(row["check"], row["case"].split(",")[0]) for row in rows if row["status"] == "PASS"}
    assert {("backends", "smoke test of triton on cpu"), ("scan", "torch float32 on cpu"),
            ("scan", "triton float32 on cpu"), ("ss2d", "triton")} <= passed
    for network in ("MambaUNet", "VMUNet", "PlainConvUNet"):
        for check in ("nets_2d", "nets_3d"):
            assert (check, f"{network} AMP training step") in passed
            assert (check, f"{network} inference") in passed
    assert all("32x32x32" in row["case"] for row in rows if row["check"] == "nets_3d")  # volumes, not images
    assert ("compile", "training step of nnUNetTrainerMambaUNet_Tiny's network") in passed  # aot_eager on CPU
    assert any(row["check"] == "triton_backward" and row["case"].startswith("3d stage 1") for row in rows)
    skipped = [row for row in rows if row["status"] == "SKIP"]
    gpu_only = ("cuda", "smoke test of cuda", "nnUNetv2_train with nnUNet_compile=t vs f",
                "nnUNetPredictor with nnUNet_compile=t vs unset")
    assert all(row["case"] in gpu_only and row["result"] for row in skipped), skipped


def test_the_json_holds_the_same_rows_with_their_numbers(injected_run):
    _, rows, raw = injected_run
    assert [(r["check"], r["status"]) for r in raw["rows"]] == [(r["check"], r["status"]) for r in rows]
    assert raw["machine"]["packages"]["torch"] and raw["settings"]["dry_run"] is True
    triton = next(r for r in raw["rows"] if r["case"].startswith("triton float32") and r["check"] == "scan")
    assert set(triton["data"]["errors"]) == {"out", "du", "ddelta", "dA", "dB", "dC", "dD", "ddelta_bias"}
    assert all(e["tol_ratio"] <= 1 for e in triton["data"]["errors"].values())
    training = [r for r in raw["rows"] if "AMP training step" in r["case"]]
    assert len(training) == 6 and all(math.isfinite(v) for r in training for v in r["data"]["losses"])
    assert set(raw["check_seconds"]) == set(CHECKS)


def test_a_run_without_failures_exits_zero(tmp_path):
    done, output = run_dry(tmp_path, "--only", "environment")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = table_rows(output.read_text())
    assert [(row["check"], row["status"]) for row in rows] == [("environment", "PASS")]


@pytest.fixture
def gpu_check(monkeypatch):
    """benchmarks/gpu_check.py as a module."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu_check
    return gpu_check


def made_up_check(tmp_path: Path, body: str) -> Path:
    """A check file of gpu-marked tests (tests/gpu/test_gpu_<check>.py's form) holding ``body``."""
    path = tmp_path / "test_gpu_made_up.py"
    path.write_text("import time\n\nimport pytest\n\npytestmark = pytest.mark.gpu\n\n\n" + body)
    return path


def run_made_up(gpu_check, tmp_path: Path, body: str, timeout_s: float) -> list:
    args = gpu_check.parse_arguments(["--dry-run"])
    env = gpu_check.check_environment(args, tmp_path / "rows.jsonl")
    return gpu_check.run_check(made_up_check(tmp_path, body), "made_up", env, timeout_s)


def test_a_check_that_hangs_is_stopped_at_its_time_limit_and_keeps_its_rows(gpu_check, tmp_path):
    rows = run_made_up(gpu_check, tmp_path, "def test_first():\n    pass\n\n\ndef test_hangs():\n    time.sleep(600)\n",
                       timeout_s=20)
    assert [(row.case, row.status) for row in rows] == [("test_first", "PASS"), ("(whole check)", "FAIL")]
    assert rows[-1].result.startswith("stopped after its time limit of 20 s after 1 row(s)")


def test_a_test_over_its_pytest_timeout_fails_alone_and_the_check_goes_on(gpu_check, tmp_path):
    body = ("@pytest.mark.timeout(2)\ndef test_hangs():\n    time.sleep(600)\n\n\n"
            "def test_after():\n    pass\n")
    rows = run_made_up(gpu_check, tmp_path, body, timeout_s=120)
    assert [(row.case, row.status) for row in rows] == [("test_hangs", "FAIL"), ("test_after", "PASS")]
    assert "Timeout" in rows[0].result


def test_a_bug_outside_any_case_fails_only_its_tests_and_the_check_goes_on(gpu_check, tmp_path):
    body = ("@pytest.fixture\ndef shape():\n    raise KeyError('no such shape')\n\n\n"
            "def test_broken(shape):\n    pass\n\n\ndef test_after():\n    pass\n")
    rows = run_made_up(gpu_check, tmp_path, body, timeout_s=120)
    assert [(row.case, row.status) for row in rows] == [("test_broken", "FAIL"), ("test_after", "PASS")]
    assert rows[0].result == "KeyError: 'no such shape'"

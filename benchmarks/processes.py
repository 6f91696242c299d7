"""The processes around a benchmark's measurements: each measurement in a fresh process (so that its peak memory is
its own, see nnunetv2_mamba/measurement), and busy processes beside them to load the CPU as other jobs would."""
from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """Run ``count`` Python processes spinning in a loop (one core each) while the block runs, then kill them:
    the load of other jobs sharing the CPU, to compare timings on an idle and on a loaded machine. A spinner also
    stops once this process is gone (killed before it could clean up)."""
    spin = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def run_measurement(script: str, arguments: Sequence[str]) -> dict | None:
    """Run ``python script *arguments`` in a fresh process; its last stdout line is a JSON dict, returned.

    On failure prints the child's last error line to stderr and returns None.
    """
    result = subprocess.run([sys.executable, script, *arguments], capture_output=True, text=True)
    if result.returncode:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"[measurement {' '.join(arguments)} failed: {last}]", file=sys.stderr)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])

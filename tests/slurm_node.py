"""Whether the one-node SLURM of scripts/slurm_single_node.sh can start here, and what a test that needs it does
where it cannot: skip with the one line that says what to install, or fail under ``CI=true`` (CI never goes green
without the SLURM tests). ``bash scripts/run.sh test`` installs the packages itself when it runs as root with
apt-get."""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

import pytest

PACKAGES = ("slurm-wlm", "slurmdbd", "munge", "mariadb-server")
#: the programs slurm_single_node.sh starts or calls
TOOLS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sinfo")
#: where Debian puts the daemons, searched after $PATH (a user's PATH often lacks them)
SYSTEM_FOLDERS = ("/usr/sbin", "/sbin")


def missing_reason(path: str | None = None, is_root: bool | None = None) -> str | None:
    """Why the one-node SLURM cannot start, as one line that says what to do, or None where it can: its programs
    missing on ``path`` (default $PATH, /usr/sbin, /sbin), or this process not root (default: its effective uid)."""
    if path is None:
        path = os.pathsep.join([os.environ.get("PATH", ""), *SYSTEM_FOLDERS])
    missing = [tool for tool in TOOLS if shutil.which(tool, path=path) is None]
    if missing:
        return (f"the one-node SLURM needs {', '.join(missing)}: as root, apt-get install -y {' '.join(PACKAGES)} "
                "(bash scripts/run.sh test does so when run as root)")
    if not (os.geteuid() == 0 if is_root is None else is_root):
        return "the one-node SLURM starts system daemons: run the SLURM tests as root"
    return None


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """``CI=true`` (GitHub Actions and most CI services set it; 1 and yes count too)."""
    return (os.environ if environ is None else environ).get("CI", "").strip().lower() in ("true", "1", "yes")


def require(path: str | None = None, is_root: bool | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Return where the one-node SLURM can start; else skip the test with the reason, or fail it under CI."""
    reason = missing_reason(path, is_root)
    if reason is None:
        return
    if in_ci(environ):
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)

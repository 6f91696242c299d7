"""What a wheel installs: every package of the source tree, and the trainers folder nnU-Net is pointed at."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_module_and_the_trainer_shims(tmp_path):
    source = tmp_path / "source"  # a copy, so that setuptools' build/ folder is not left in the checkout
    for folder in ("nnunetv2_mamba", "trainers"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for file in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / file, source / file)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("nnunetv2_mamba-*.whl")
    installed = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    expected = {str(path.relative_to(REPO)) for path in (REPO / "nnunetv2_mamba").rglob("*.py")}
    expected |= {f"nnunetv2_mamba/ext_trainers/{path.name}" for path in (REPO / "trainers").glob("*.py")}
    assert expected - installed == set()
    assert "nnunetv2_mamba/ext_trainers/nnunetv2_mamba_trainers.py" in installed

"""The end-to-end tests call nnU-Net's console scripts (nnUNetv2_train, ...) by name, as a user types them:
put the scripts folder of the interpreter running the tests first on PATH, so an unactivated virtualenv
(``venv/bin/python -m pytest``, as scripts/run.sh and CI run it) finds its own nnU-Net. Fixtures shared by several
test files live here too."""
import os
import subprocess
import sys

import pytest

from helpers import REPO, run

SLURM_SCRIPT = REPO / "scripts" / "slurm_single_node.sh"

os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(params=["torch", "cpu"])
def cpu_scan_backend(request, monkeypatch):
    """The test runs once per CPU scan backend, with $nnUNet_mamba_scan set to it (skipped where it is unavailable,
    e.g. cpu without a C compiler); use with ``pytestmark = pytest.mark.usefixtures("cpu_scan_backend")``."""
    from nnunetv2_mamba.ops.backends import availability

    if not availability(request.param).available:
        pytest.skip(f"backend {request.param} unavailable: {availability(request.param).reason}")
    monkeypatch.setenv("nnUNet_mamba_scan", request.param)
    return request.param


@pytest.fixture(scope="session")
def planned_phantom(tmp_path_factory) -> dict:
    """A 6-case 64x64 phantom with 2 test cases (imagesTs, labelsTs), planned and preprocessed with nnU-Net's stock
    planner (2d); ``root`` holds the nnU-Net folders, ``env`` runs the benchmark (which sets nnUNet_n_proc_DA and
    nnUNet_extTrainer itself). Benchmarks of different trainers or plans share it: their runs have their own
    results folders."""
    from nnunetv2_mamba.synthetic import write_phantom_dataset

    root = tmp_path_factory.mktemp("benchmark")
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
           "nnUNet_results": str(root / "results"), "nnUNet_def_n_proc": "1", "OMP_NUM_THREADS": "1"}
    for name in ("nnUNet_n_proc_DA", "nnUNet_extTrainer"):
        env.pop(name, None)
    write_phantom_dataset(root / "raw", dataset_id=900, num_cases=6, image_size=(64, 64), seed=0, num_test_cases=2)
    run(["nnUNetv2_plan_and_preprocess", "-d", "900", "-c", "2d", "-np", "1", "-npfp", "1"], env)
    return {"root": root, "env": env}


@pytest.fixture(scope="session")
def slurm():
    """A running single-node SLURM (SLURM_CONF exported to this process and so to the jobs); stopped afterwards
    if this session started it. Fails, with the script's reason, where it cannot start."""
    was_running = subprocess.run(["bash", str(SLURM_SCRIPT), "status"], capture_output=True,
                                 timeout=60).returncode == 0
    started = subprocess.run(["bash", str(SLURM_SCRIPT), "start"], capture_output=True, text=True, timeout=300)
    if started.returncode != 0:
        pytest.fail(f"the single-node SLURM did not start: {started.stderr.strip()}")
    conf = started.stdout.strip().splitlines()[-1].removeprefix("export SLURM_CONF=")
    os.environ["SLURM_CONF"] = conf
    yield conf
    if not was_running:
        subprocess.run(["bash", str(SLURM_SCRIPT), "stop"], capture_output=True, timeout=120)

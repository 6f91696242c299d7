"""The end-to-end tests call nnU-Net's console scripts (nnUNetv2_train, ...) by name, as a user types them:
put the scripts folder of the interpreter running the tests first on PATH, so an unactivated virtualenv
(``venv/bin/python -m pytest``, as scripts/run.sh and CI run it) finds its own nnU-Net. Fixtures shared by several
test files live here too.

Test tiers, marked from the fixtures a test uses (pytest_collection_modifyitems below): ``slurm`` for a test that
needs the one-node SLURM (the ``slurm`` fixture, or a parameter ``"slurm"`` of a fixture that requests it at run
time), ``e2e`` for one that runs nnU-Net's commands, trainings or other whole programs in subprocesses (one of
``E2E_FIXTURES``). The inner loop is
``pytest -m "not e2e and not slurm"``.

Parallel sessions (pytest-xdist, ``-n N``; scripts/run.sh test runs one worker per core, at most 4, and gives each
worker whole test files): every worker has its own session fixtures and temporary folders, so nothing but the
one-node SLURM is shared. The controlling process makes a folder for what its workers share
(``$nnUNet_mamba_test_session``): the lock under which a worker starts the SLURM, and the mark that this session
started it, so the controlling process stops it after every worker is done. Each worker's torch gets its share of
the cores.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from filelock import FileLock

import slurm_node
from helpers import DATASET, REPO, run

SLURM_SCRIPT = REPO / "scripts" / "slurm_single_node.sh"

os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

#: the folder that a test session's workers share (made by the controlling process, inherited by the workers)
SESSION_FOLDER = "nnUNet_mamba_test_session"
SLURM_STARTED = "slurm.started"
_OWNS_SESSION_FOLDER = pytest.StashKey[bool]()


def pytest_configure(config):
    if not hasattr(config, "workerinput") and SESSION_FOLDER not in os.environ:  # the controlling process
        os.environ[SESSION_FOLDER] = tempfile.mkdtemp(prefix="nnunetv2_mamba-tests-")
        config.stash[_OWNS_SESSION_FOLDER] = True
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if hasattr(config, "workerinput") and workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_sessionfinish(session):
    """The controlling process, after every worker: stop the SLURM this session started, remove the shared folder."""
    if not session.config.stash.get(_OWNS_SESSION_FOLDER, False):
        return
    shared = Path(os.environ.pop(SESSION_FOLDER))
    if (shared / SLURM_STARTED).exists():
        subprocess.run(["bash", str(SLURM_SCRIPT), "stop"], capture_output=True, timeout=120)
    shutil.rmtree(shared, ignore_errors=True)


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
    """The test session's one planned dataset: a 6-case 64x64 phantom with 2 test cases (imagesTs, labelsTs),
    planned and preprocessed with nnU-Net's stock planner (2d); ``root`` holds the nnU-Net folders, ``env`` runs the
    benchmark (which sets nnUNet_n_proc_DA and nnUNet_extTrainer itself). Every test that trains on it has results
    folders of its own; variants of a plans file are extra plans on the same preprocessed data
    (tiny_mamba_plans, nnunet_cli.plans_variant)."""
    from nnunetv2_mamba.synthetic import write_phantom_dataset

    root = tmp_path_factory.mktemp("benchmark")
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
           "nnUNet_results": str(root / "results"), "nnUNet_def_n_proc": "1", "OMP_NUM_THREADS": "1"}
    for name in ("nnUNet_n_proc_DA", "nnUNet_extTrainer"):
        env.pop(name, None)
    write_phantom_dataset(root / "raw", dataset_id=900, num_cases=6, image_size=(64, 64), seed=0, num_test_cases=2)
    run(["nnUNetv2_plan_and_preprocess", "-d", "900", "-c", "2d", "-np", "1", "-npfp", "1"], env)
    return {"root": root, "env": env}


#: the plans of tiny_mamba_plans
TINY_MAMBA_PLANS = "nnUNetMambaUNetPlans32"
PLAN_UNDER_A_NAME = ("import sys; from nnunetv2_mamba.experiment_planning.planners import PLANNERS; "
                     "PLANNERS[sys.argv[1]](int(sys.argv[2]), plans_name=sys.argv[3]).plan_experiment()")


@pytest.fixture(scope="session")
def tiny_mamba_plans(planned_phantom) -> Path:
    """Our Mamba-UNet planner's plans for the session's phantom, under the name ``TINY_MAMBA_PLANS`` (the
    benchmark tests plan nnUNetMambaUNetPlans themselves), with the 2d patch cut to 32x32 for fast training steps.
    They train on the phantom's stock preprocessed data (nnUNetPlans_2d): planned, nothing preprocessed again.
    Returns the plans file; tests that change plans change a variant of it (nnunet_cli.plans_variant)."""
    env = planned_phantom["env"]
    run([sys.executable, "-c", PLAN_UNDER_A_NAME, "MambaUNet", "900", TINY_MAMBA_PLANS], env)
    plans_file = planned_phantom["root"] / "preprocessed" / DATASET / f"{TINY_MAMBA_PLANS}.json"
    plans = json.loads(plans_file.read_text())
    assert plans["configurations"]["2d"]["data_identifier"] == "nnUNetPlans_2d"
    plans["configurations"]["2d"]["patch_size"] = [32, 32]
    plans_file.write_text(json.dumps(plans, indent=4))
    return plans_file


@pytest.fixture
def benchmark_input_folders(tmp_path, monkeypatch) -> Path:
    """nnU-Net's folders in this process's environment, with dataset 900 as far as the benchmark's input checks
    read it (its preprocessed folder and stock nnUNetPlans.json, nnU-Net's 5 folds; no results folder yet): for the
    input errors that stop ``nnunetv2_mamba benchmark`` before it plans or trains anything, run in process. Returns
    the root."""
    for name, folder in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"), ("nnUNet_results", "results")):
        monkeypatch.setenv(name, str(tmp_path / folder))
    dataset = tmp_path / "preprocessed" / DATASET
    dataset.mkdir(parents=True)
    (dataset / "nnUNetPlans.json").write_text(json.dumps({"plans_name": "nnUNetPlans", "configurations": {"2d": {}}}))
    return tmp_path


@pytest.fixture
def nnunet_workspace(tmp_path) -> dict:
    """An empty folder for a test that runs nnU-Net's commands on data of its own (so it is e2e): ``root``, and
    ``env`` with nnUNet_raw/_preprocessed/_results under it, one thread and process each."""
    from nnunet_cli import planning_environment

    root = tmp_path / "nnunet"
    root.mkdir()
    return {"root": root, "env": planning_environment(root)}


@pytest.fixture(scope="session")
def slurm():
    """A running single-node SLURM (SLURM_CONF exported to this process and so to the jobs), shared by the
    session's workers; stopped after the session (pytest_sessionfinish) if this session started it. Without its
    packages or root: skipped with what to install, failed under CI=true (tests/slurm_node.py); where it is
    installed but does not start: failed with the script's reason."""
    slurm_node.require()
    shared = Path(os.environ[SESSION_FOLDER])
    with FileLock(shared / "slurm.lock"):  # one worker starts it, the others find it running
        was_running = subprocess.run(["bash", str(SLURM_SCRIPT), "status"], capture_output=True,
                                     timeout=60).returncode == 0
        started = subprocess.run(["bash", str(SLURM_SCRIPT), "start"], capture_output=True, text=True, timeout=300)
        if started.returncode != 0:
            pytest.fail(f"the single-node SLURM did not start: {started.stderr.strip()}")
        if not was_running:
            (shared / SLURM_STARTED).touch()
    conf = started.stdout.strip().splitlines()[-1].removeprefix("export SLURM_CONF=")
    os.environ["SLURM_CONF"] = conf
    return conf


@pytest.fixture
def nnunet_trainer_search():
    """nnU-Net's trainer search as ``nnUNetv2_train`` starts it, in a fresh Python: ``search(script, env, *args)``
    runs ``script`` (dedented) with ``env`` and returns the finished process (text stdout, stderr), failing the test
    with its output when it exits non-zero. Each call imports nnU-Net and our trainers afresh (seconds)."""
    def search(script: str, env: dict, *arguments: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *arguments], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done
    return search


#: fixtures that run nnU-Net's commands, trainings or whole programs in subprocesses (or give a test the folders
#: to run them in), directly or through the fixtures they use: their tests are e2e (``workspace``: a module's own
#: planned dataset; ``injected_run``: the GPU check's dry run, which trains; ``gpu_check``: the GPU check's runner,
#: each check a pytest process of its own; ``triton_results``: the Triton kernels' whole case list in one worker
#: under Triton's interpreter)
E2E_FIXTURES = frozenset({"planned_phantom", "nnunet_workspace", "workspace", "nnunet_trainer_search",
                          "injected_run", "gpu_check", "triton_results"})


def tiers_of(fixture_names, parameters) -> set[str]:
    """The tier markers of a test that uses ``fixture_names`` and is parametrised with ``parameters`` (values)."""
    tiers = set()
    if "slurm" in fixture_names or "slurm" in parameters:
        tiers.add("slurm")
    if E2E_FIXTURES & set(fixture_names):
        tiers.add("e2e")
    return tiers


def pytest_collection_modifyitems(config, items):
    """Mark each test's tiers, and put the e2e and slurm tests first: in a parallel session the files with long
    tests start first and the short ones fill the gaps at the end (scripts/run.sh hands out whole files, so that a
    module-scoped fixture is made once, in this order: --dist loadfile --no-loadscope-reorder)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        parameters = [v for v in callspec.params.values() if isinstance(v, str)] if callspec else []
        for tier in sorted(tiers_of(item.fixturenames, parameters)):
            item.add_marker(tier)
    items.sort(key=lambda item: not ({"e2e", "slurm"} & set(item.keywords)))

"""The warm interpreter (comparison/execution/warm_interpreter.py): a Python command started as a fork of a server
that has imported torch and nnU-Net's libraries runs as a fresh interpreter would run it (arguments, environment,
directory, search path, streams, exit status, nnU-Net's spawn pools), with nnU-Net's environment read again per job;
what it cannot run warm runs as a plain subprocess."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nnunetv2_mamba.comparison.execution.warm_interpreter import WarmInterpreter, python_program

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks: Linux only")


@pytest.fixture(scope="module")
def interpreter():
    warm = WarmInterpreter()
    yield warm
    warm.close()


def python(code: str, *arguments: str, folder: Path) -> list[str]:
    """``python SCRIPT ARGUMENTS`` of a new script in ``folder`` holding ``code``."""
    script = folder / f"job{len(list(folder.glob('job*.py')))}.py"
    script.write_text(textwrap.dedent(code))
    return [sys.executable, str(script), *arguments]


def test_a_command_runs_as_a_fresh_interpreter_would_with_the_server_s_imports(interpreter, tmp_path):
    env = {**os.environ, "nnUNet_results": str(tmp_path / "first")}
    code = """
        import os, sys
        warm = "torch" in sys.modules  # imported by the server, not by this program
        print(sys.argv[1:], os.getcwd(), os.environ["nnUNet_results"], sys.path[0] == os.path.dirname(__file__), warm)
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    """
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        process = interpreter.popen(python(code, "a", "b c", folder=tmp_path), env=env, stdout=out, stderr=err,
                                    cwd=tmp_path)
        assert process.wait(timeout=120) == 3 and process.returncode == 3
    assert (tmp_path / "out").read_text() == f"['a', 'b c'] {tmp_path} {tmp_path / 'first'} True True\n"
    assert (tmp_path / "err").read_text() == "to stderr\n"


def test_nnunet_reads_each_job_s_environment_and_each_job_its_own_seeds(interpreter, tmp_path):
    code = """
        import numpy, torch
        from nnunetv2 import paths
        print(paths.nnUNet_results, numpy.random.randint(1 << 30), torch.randint(1 << 30, ()).item())
    """
    outputs = [interpreter.run(python(code, folder=tmp_path), timeout=120,
                               env={**os.environ, "nnUNet_results": str(tmp_path / name)}) for name in ("one", "two")]
    assert all(done.returncode == 0 for done in outputs), outputs
    (results_1, *seeds_1), (results_2, *seeds_2) = (done.stdout.split() for done in outputs)
    assert (results_1, results_2) == (str(tmp_path / "one"), str(tmp_path / "two"))
    assert seeds_1[0] != seeds_2[0] and seeds_1[1] != seeds_2[1]


def test_a_console_script_runs_nnunet_s_spawn_pools_and_exceptions_end_it_as_python_would(interpreter, tmp_path):
    script = tmp_path / "bin" / "square_in_a_pool"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent("""
        import multiprocessing, operator, sys
        if __name__ == "__main__":
            with multiprocessing.get_context("spawn").Pool(2) as pool:  # as nnU-Net's export and metric pools
                print(pool.starmap(operator.mul, [(n, n) for n in map(int, sys.argv[1:])]))
            raise ValueError("after the pool")
    """))
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{script.parent}{os.pathsep}{os.environ['PATH']}"}
    assert python_program([script.name, "3"], env)[0] == "console_script"
    done = interpreter.run([script.name, "3", "4"], env=env, timeout=300)
    assert done.returncode == 1
    assert done.stdout.startswith("[9, 16]\n") and "ValueError: after the pool" in done.stdout


def test_a_killed_job_a_job_past_its_timeout_and_a_new_session_are_as_with_subprocess(interpreter, tmp_path):
    env = dict(os.environ)
    with open(tmp_path / "out", "wb") as out:
        leader = interpreter.popen(python("import os; print(os.getsid(0) == os.getpid() == os.getpgid(0))",
                                          folder=tmp_path), env=env, stdout=out, start_new_session=True)
        assert leader.wait(timeout=120) == 0
    assert (tmp_path / "out").read_text() == "True\n"  # os.killpg(pid) stops it with its children
    process = interpreter.popen(python("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", folder=tmp_path),
                                env=env, stdout=subprocess.DEVNULL)
    assert process.wait(timeout=120) == -signal.SIGTERM
    with pytest.raises(subprocess.TimeoutExpired):
        interpreter.run(python("import time; time.sleep(600)", folder=tmp_path), env=env, timeout=5)
    assert interpreter.run(python("print('next')", folder=tmp_path), env=env,
                           timeout=120).stdout == "next\n"  # the server goes on


def test_what_cannot_run_warm_runs_as_a_plain_subprocess(interpreter, tmp_path):
    env = dict(os.environ)
    (tmp_path / "job.py").write_text("print('a script')")
    assert python_program([sys.executable, "job.py"], env, cwd=str(tmp_path)) == (
        "script", str(tmp_path / "job.py"), [])  # found where the job runs
    assert python_program(["sh", "-c", "exit 0"], env) is None
    assert python_program([sys.executable, "-B", "-m", "json.tool"], env) is None  # interpreter options
    assert python_program([sys.executable, "-c", "pass"], env) is None  # a snippet's imports are its own
    process = interpreter.popen(["sh", "-c", "exit 5"], env=env)
    assert isinstance(process, subprocess.Popen) and process.wait(timeout=60) == 5
    other = {**env, "OMP_NUM_THREADS": "3"}  # read by torch's OpenMP at import: another server
    assert interpreter.run(python("import os; print(os.environ['OMP_NUM_THREADS'])", folder=tmp_path), env=other,
                           timeout=120).stdout == "3\n"

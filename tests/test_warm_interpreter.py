"""The warm interpreter (nnunetv2_mamba/warm): a Python command started as a fork of a server
that has imported torch and nnU-Net's libraries runs as a fresh interpreter would run it (arguments, environment,
directory, search path, streams, exit status, nnU-Net's spawn pools), with nnU-Net's environment read again per job;
what it cannot run warm runs as a plain subprocess."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nnunetv2_mamba.warm.interpreter import WarmInterpreter, python_program
from helpers import run_python

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


def test_a_job_s_spawned_processes_are_warm_forks_that_end_as_spawned_interpreters_would(interpreter, tmp_path):
    (tmp_path / "spawned.py").write_text(textwrap.dedent("""
        import multiprocessing, os, sys, time
        def describe(_=None):  # torch imported means a fork of the warm job: a fresh interpreter has not imported it
            return "torch" in sys.modules, os.environ.get("CHANGED"), os.getcwd()
        def exit_with(code):
            print("from the worker", flush=True)
            sys.exit(code)
        def sleep_in(pid_file):
            open(pid_file, "w").write(str(os.getpid()))
            time.sleep(600)
        def spawn_again(result_file):  # a spawned process's own spawns start fresh interpreters
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                open(result_file, "w").write(repr(pool.map(describe, [0])))
    """))
    code = """
        import multiprocessing, os, sys, time
        import spawned
        def started(target, *args):
            process = context.Process(target=target, args=args)
            process.start()
            return process
        if __name__ == "__main__":
            open("service", "w").write(open(f"/proc/self/task/{os.getpid()}/children").read())  # its only child yet
            context = multiprocessing.get_context("spawn")
            with context.Pool(2) as pool:
                print(pool.map(spawned.describe, range(2)), flush=True)
            started(spawned.spawn_again, "nested").join()
            print(open("nested").read(), flush=True)
            process = started(spawned.exit_with, 7)
            process.join()
            print(process.exitcode, flush=True)
            for stop, pid_file in (("terminate", "terminated"), ("kill", "killed")):
                process = started(spawned.sleep_in, pid_file)
                while not os.path.exists(pid_file) or not open(pid_file).read():
                    time.sleep(0.1)
                getattr(process, stop)()
                process.join()
                print(process.exitcode, flush=True)
            os.environ["CHANGED"] = "yes"  # torch may read it at import: a fresh interpreter runs the next one
            with context.Pool(1) as pool:
                print(pool.map(spawned.describe, [0]), flush=True)
    """
    done = interpreter.run(python(code, folder=tmp_path), env=dict(os.environ), timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    here = str(tmp_path)
    assert done.stdout.splitlines() == [
        f"[(True, None, '{here}'), (True, None, '{here}')]", f"[(False, None, '{here}')]",
        "from the worker", "7", str(-signal.SIGTERM), str(-signal.SIGKILL), f"[(False, 'yes', '{here}')]"]
    # with the launcher killed, its worker is killed too; the job's spawn service ends with the job
    for pid in [int((tmp_path / name).read_text()) for name in ("terminated", "killed")] + [
            int((tmp_path / "service").read_text())]:
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"process {pid} outlived its launcher or its job")


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


def test_the_client_imports_none_of_the_linux_only_modules():
    """The inline executor imports the client everywhere; the server, the spawn service and the launcher (fork,
    prctl, fcntl, SIGUSR1) are imported only where a server starts."""
    done = run_python("import sys, nnunetv2_mamba.warm.interpreter; "
                      "print(sorted(m for m in sys.modules if m.startswith('nnunetv2_mamba.warm.')))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "['nnunetv2_mamba.warm.interpreter', 'nnunetv2_mamba.warm.protocol']"

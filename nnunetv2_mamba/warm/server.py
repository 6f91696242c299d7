"""The warm interpreter's server (started by :class:`.interpreter.WarmInterpreter`, never by hand): a Python
process that imports the third-party libraries of nnU-Net's commands once (torch, torch._dynamo, scipy, SimpleITK,
matplotlib, ...: 6 of the 8 s a command spends before it starts) and then runs each requested Python program in a
fork of itself, as a fresh interpreter would run it.

What a fork shares with the server is only what every job would import the same way: the server imports nnU-Net and
this package to pull in their dependencies, then forgets them (they read ``nnUNet_*`` variables at import, which
differ from job to job), so each job imports them again under its own environment (0.2 s). The client sends only
jobs whose other variables equal the server's.

Protocol, over the socket whose descriptor is ``argv[1]``, one job at a time: the client sends a request (a JSON
object, :mod:`.protocol`) with the job's stdin, stdout and stderr descriptors attached; the server answers
``{"pid": ...}`` when the job has started and ``{"returncode": ...}`` (negative: killed by that signal, as
:class:`subprocess.Popen` says) when it has ended. The server exits when the client closes the socket. With a
launcher's path as ``argv[2]`` (:mod:`.launcher`), each job's spawned processes are forks too (:mod:`.spawn`).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import runpy
import signal
import socket
import sys
import types
from pathlib import Path

from . import spawn
from .launcher import socket_path
from .protocol import receive, send

#: what nnU-Net's commands and this package's CLI import: their third-party libraries stay loaded
PRELOADED = ("nnunetv2.run.run_training", "nnunetv2.inference.predict_from_raw_data",
             "nnunetv2.evaluation.find_best_configuration", "nnunetv2.ensembling.ensemble",
             "nnunetv2.postprocessing.remove_connected_components",
             "nnunetv2.experiment_planning.plan_and_preprocess_entrypoints", "nnunetv2_mamba.cli")
#: read ``nnUNet_*`` variables at import: imported again in every job
FORGOTTEN = ("nnunetv2", "nnunetv2_mamba")
PR_SET_CHILD_SUBREAPER = 36


def preload() -> None:
    """Import :data:`PRELOADED`, then forget the :data:`FORGOTTEN` packages (their dependencies stay)."""
    for name in PRELOADED:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a job that needs the module imports it and reports the error itself
            pass
    for name in [name for name in sys.modules if name.split(".")[0] in FORGOTTEN]:
        del sys.modules[name]


def serve(channel: socket.socket, launcher: str | None) -> dict:
    """Start each request in a fork and report its end; returns the request in the fork (never in the server).

    The server adopts what its jobs leave behind (their spawn services, see :mod:`.spawn`) and reaps it."""
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1))
    while True:
        try:
            request, fds = receive(channel)
        except EOFError:
            sys.exit(0)
        pid = os.fork()
        if pid == 0:
            channel.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            return request
        for fd in fds:
            os.close(fd)
        send(channel, {"pid": pid})
        send(channel, {"returncode": _wait_reaping(pid)})
        if launcher is not None:
            with contextlib.suppress(FileNotFoundError):  # the job's spawn service, if it started
                os.unlink(socket_path(os.path.dirname(launcher), pid))


def _wait_reaping(job: int) -> int:
    """The job's exit code (negative: the signal that killed it), reaping adopted processes meanwhile."""
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == job:
            return os.waitstatus_to_exitcode(status)


def become(request: dict) -> None:
    """This fork as a fresh interpreter started for ``request`` would be: its session, directory, environment,
    search path, random seeds and signal handlers."""
    if request["new_session"]:
        os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[:] = [request["path0"], *sys.path[1:]]
    signal.signal(signal.SIGINT, signal.SIG_IGN if request["sigint_ignored"] else signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as at Python's start-up
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()  # numpy's global generator is seeded at import: a fork would share it
    if "torch" in sys.modules:
        sys.modules["torch"].seed()


def run_program(kind: str, target: str, arguments: list[str]) -> None:
    """Run the program as ``__main__``: ``module`` as ``python -m``, ``script`` as ``python script``, ``command``
    (its source) as ``python -c``, ``console_script`` (an installed command's file: an entry point's import and call)
    like a script whose ``__main__`` has no file, so that the processes nnU-Net spawns do not import it again (it
    defines nothing they need). The program ends the process the way it would end that interpreter (SystemExit, an
    exception)."""
    if kind == "module":
        sys.argv = [target, *arguments]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif kind == "script":
        sys.argv = [target, *arguments]
        runpy.run_path(target, run_name="__main__")
    else:
        source, filename = (target, "<string>") if kind == "command" else (Path(target).read_text(), target)
        sys.argv = ["-c" if kind == "command" else target, *arguments]
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main
        exec(compile(source, filename, "exec"), main.__dict__)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the jobs and the client, which decide
    channel = socket.socket(fileno=int(sys.argv[1]))
    launcher = sys.argv[2] if len(sys.argv) > 2 else None
    preload()
    request = serve(channel, launcher)
    become(request)
    worker = spawn.start(launcher) if launcher is not None else None
    if worker is not None:  # this process is one the job spawned
        become(worker)
        request = worker
    run_program(request["kind"], request["target"], request["arguments"])


if __name__ == "__main__":
    main()

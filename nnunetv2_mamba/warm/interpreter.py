"""Start Python commands (nnU-Net's console scripts, ``python -m ...``, ``python script.py``) as forks of a warm
interpreter that has imported their libraries already, so that a short command does not spend most of its time
importing torch (a one-iteration ``nnUNetv2_train`` on a small dataset: 8 s of imports before 5 s of work).

``WarmInterpreter().popen(command, env=..., stdout=..., stderr=...)`` answers like :class:`subprocess.Popen`
(``wait``, ``poll``, ``kill``, ``returncode``, ``pid``) and is a plain ``subprocess.Popen`` for a command it cannot
run warm: not a Python program of this interpreter, a ``python -c`` snippet (its imports are its own: a server
started for it would cost more than it saves), Python options before ``-m``, or an operating system other than
Linux. A server (:mod:`.server`) serves the jobs of one environment, up to the ``nnUNet_*`` and pytest's
variables (read at import by nnU-Net and this package only, which the server does not keep imported); the last
:data:`MAX_SERVERS` environments keep theirs. A fork differs from a fresh interpreter in two ways a program should not
notice: its string hashes share the server's seed (as with a fixed ``PYTHONHASHSEED``), and its tracebacks show the
server's frames above the program's. The processes a job spawns with multiprocessing (nnU-Net's export and metric
pools) are forks of a warm copy of the job (:mod:`.spawn`). Servers start on first use and end when this object is
closed or collected, or when this process ends.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

from .protocol import interpreter_environment, receive, send

MAX_SERVERS = 2
#: the server's module (:mod:`.server`), run by name: it and the spawn service use Linux's process calls, so this
#: module, importable everywhere, imports them only where it starts a server
SERVER_MODULE = f"{__package__}.server"


def python_program(command: list[str], env: dict[str, str],
                   cwd: str | None = None) -> tuple[str, str, list[str]] | None:
    """``(kind, target, arguments)`` of a command this interpreter runs warm as ``python -m``, a script or a console
    script (:func:`.server.run_program`) in the directory ``cwd`` (default: ours), or None."""
    if not command:
        return None
    executable = shutil.which(command[0], path=env.get("PATH", os.defpath))
    if executable is None:
        return None
    if os.path.abspath(executable) == os.path.abspath(sys.executable):
        if len(command) >= 3 and command[1] == "-m":
            return "module", command[2], list(command[3:])
        script = Path(cwd or os.getcwd(), command[1]) if len(command) >= 2 else None
        if script is not None and not command[1].startswith("-") and script.is_file():
            return "script", os.path.abspath(script), list(command[2:])
        return None
    if _shebang(executable) == os.path.abspath(sys.executable):  # a console script of this environment
        return "console_script", executable, list(command[1:])
    return None


def _shebang(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            first = file.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return os.path.abspath(words[0]) if len(words) == 1 else None


class WarmProcess:
    """A job running in a fork of a warm server: the part of :class:`subprocess.Popen` that callers use."""

    def __init__(self, server: _Server, pid: int, args: list[str], done):
        self._server, self.pid, self.args, self._done = server, pid, args, done
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self._server.wait(timeout, self.args)
            self._done()
        return self.returncode

    def poll(self) -> int | None:
        try:
            return self.wait(timeout=0)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.returncode is None:
            _kill(self.pid)


class WarmInterpreter:
    """Runs Python commands as forks of warm servers, one at a time: a second ``popen`` while a job runs (from
    another thread, or before ``wait``) gets a plain subprocess. Not picklable: each process makes its own."""

    def __init__(self):
        self._servers: OrderedDict[tuple, _Server] = OrderedDict()
        self._busy = threading.Lock()
        self._finalizer = weakref.finalize(self, _stop_all, self._servers)

    def popen(self, command: list[str], env: dict[str, str], stdout=None, stderr=None, cwd=None,
              start_new_session: bool = False):
        """``subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, cwd=cwd, stdin=DEVNULL,
        start_new_session=start_new_session)``, warm where it can be."""
        command = [str(word) for word in command]
        program = python_program(command, env, cwd) if sys.platform.startswith("linux") else None
        if program is not None and self._busy.acquire(blocking=False):
            process = self._start(command, program, env, stdout, stderr, cwd, start_new_session)
            if process is not None:
                return process
            self._busy.release()
        return subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, cwd=cwd, stdin=subprocess.DEVNULL,
                                start_new_session=start_new_session)

    def run(self, command: list[str], env: dict[str, str], timeout: float | None = None,
            cwd=None) -> subprocess.CompletedProcess:
        """``subprocess.run(command, env=env, stdout=PIPE, stderr=STDOUT, text=True, timeout=timeout, cwd=cwd)``,
        warm where it can be: the output (stdout and stderr in one) is collected in a temporary file."""
        with tempfile.TemporaryFile() as output:
            process = self.popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=cwd)
            try:
                returncode = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
            output.seek(0)
            text = output.read().decode(errors="replace")
        return subprocess.CompletedProcess(command, returncode, text)

    def close(self) -> None:
        """Stop the servers, killing a running job."""
        self._finalizer()

    def _start(self, command, program, env, stdout, stderr, cwd, start_new_session) -> WarmProcess | None:
        """The job started in a fork of its environment's server, or None where that server cannot start it."""
        key = tuple(sorted(interpreter_environment(env).items()))
        server = self._servers.pop(key, None) or _Server(env)
        self._servers[key] = server  # the most recently used last
        while len(self._servers) > MAX_SERVERS:
            self._servers.popitem(last=False)[1].stop()
        kind, target, arguments = program
        cwd = os.path.abspath(cwd or os.getcwd())
        path0 = cwd if kind == "module" else os.path.dirname(os.path.realpath(target))  # as Python sets sys.path[0]
        request = {"kind": kind, "target": target, "arguments": arguments, "env": dict(env), "cwd": cwd,
                   "path0": path0, "new_session": start_new_session, "sigint_ignored": False}
        with open(os.devnull, "rb") as stdin, open(os.devnull, "wb") as devnull:
            fds = [stdin.fileno(), _descriptor(stdout, 1, devnull), _descriptor(stderr, 2, devnull, stdout)]
            pid = server.start(request, fds)
        if pid is None:
            del self._servers[key]
            return None
        return WarmProcess(server, pid, command, self._busy.release)


class _Server:
    """One warm server process (:mod:`.server`), the socket to it and the folder of its spawn launcher
    (:mod:`.launcher`); ``job``: the pid of its running job."""

    def __init__(self, env: dict[str, str]):
        from . import launcher

        self.folder = tempfile.mkdtemp(prefix="nnunetv2_mamba-warm-")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        command = [sys.executable, "-m", SERVER_MODULE, str(theirs.fileno())]
        spawn_launcher = launcher.write(self.folder)
        if spawn_launcher is not None:
            command.append(spawn_launcher)
        try:
            self.process = subprocess.Popen(command, env=env, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            ours.close()
            raise
        finally:
            theirs.close()
        self.channel, self.job = ours, None

    def start(self, request: dict, fds: list[int]) -> int | None:
        """The pid of the job started for ``request`` with ``fds`` as its stdin, stdout, stderr; None if the server
        has died (it is stopped then)."""
        try:
            send(self.channel, request, fds)
            answer, _ = receive(self.channel)
        except (OSError, EOFError):
            self.stop()
            return None
        self.job = answer["pid"]
        return self.job

    def wait(self, timeout: float | None, args: list[str]) -> int:
        """The running job's exit code (negative: the signal that killed it), waiting at most ``timeout`` s."""
        if timeout is not None and not select.select([self.channel], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(args, timeout)
        try:
            answer, _ = receive(self.channel)
            returncode = answer["returncode"]
        except (OSError, EOFError):
            returncode = -signal.SIGKILL  # the server was killed, and its job with it
        self.job = None
        return returncode

    def stop(self) -> None:
        """Kill a running job, close the socket (the server exits) and wait for the server."""
        if self.job is not None:
            _kill(self.job)
        self.channel.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _descriptor(stream, default: int, devnull, stdout=None) -> int:
    """The file descriptor a job's stream goes to: ``stream``'s, the stdout's for subprocess.STDOUT, ours for None."""
    if stream == subprocess.STDOUT:
        return _descriptor(stdout, 1, devnull)
    if stream is None:
        return default
    if stream == subprocess.DEVNULL:
        return devnull.fileno()
    return stream if isinstance(stream, int) else stream.fileno()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stop_all(servers: OrderedDict) -> None:
    while servers:
        servers.popitem()[1].stop()

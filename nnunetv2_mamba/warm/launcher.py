"""The program that multiprocessing's spawn starts in a warm job (``multiprocessing.set_executable``, see
:mod:`.spawn`): ``launcher [OPTIONS] -c PROGRAM ARGUMENTS`` hands its command, environment, directory and inherited
descriptors to its job's spawn service, which runs the program in a fork of a warm copy of the job. The launcher then
passes on the signals a process is sent by its pid (SIGTERM: ``Pool.terminate``, ``Process.terminate``; SIGUSR1/2),
and ends as the program ends (its exit code, or killed by the same signal). It ignores the terminal's signals (SIGINT,
SIGQUIT, SIGHUP): the program, in the job's process group, receives those itself. Where no service answers (a process
spawned by a spawned process) or the service declines, the launcher executes the real interpreter with the same
command, as multiprocessing would have.

Standard library only, started as ``python -S`` (:func:`write`): it starts in milliseconds.
"""
from __future__ import annotations

import os
import signal
import socket
import sys

from .protocol import MAX_FDS, receive, send

NAME = "spawn-launcher"
RELAYED = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
TERMINAL = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)


def socket_path(directory: str, job: int) -> str:
    """Where the spawn service of the job with pid ``job`` listens: beside the launcher."""
    return os.path.join(directory, f"spawn-{job}.sock")


def write(directory: str) -> str | None:
    """The launcher written into ``directory`` for this interpreter (its path), or None where a ``#!`` line cannot
    name this interpreter or ``directory`` is on a file system mounted noexec."""
    python = sys.executable
    if not python or len(python) > 200 or any(character.isspace() for character in python):
        return None
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(directory, NAME)
    with open(path, "w") as script:
        script.write(f"#!{python} -S\nimport sys\nsys.path.insert(0, {package_root!r})\n"
                     "from nnunetv2_mamba.warm.launcher import main\nmain()\n")
    os.chmod(path, 0o700)
    return path if os.access(path, os.X_OK) else None  # access() says EACCES on a noexec mount


def main() -> None:
    command = sys.argv[1:]
    if "-c" not in command:
        _execute_python(command)
    start = command.index("-c") + 1
    fds = _inherited_fds()
    request = {"program": command[start], "arguments": command[start + 1:], "env": dict(os.environ),
               "cwd": os.getcwd(), "fds": fds, "sigint_ignored": signal.getsignal(signal.SIGINT) is signal.SIG_IGN}
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED)  # until they can be passed on
    try:
        if len(fds) > MAX_FDS:
            raise OSError("too many descriptors to hand over")
        channel.connect(socket_path(os.path.dirname(os.path.abspath(sys.argv[0])), os.getppid()))
        send(channel, request, fds)
        answer, _ = receive(channel)
    except (OSError, EOFError):
        answer = {"fallback": "no spawn service"}
    if "fallback" in answer:
        channel.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, RELAYED)
        _execute_python(command)
    for number in TERMINAL:
        signal.signal(number, signal.SIG_IGN)
    for number in RELAYED:
        signal.signal(number, lambda received, _: send(channel, {"signal": received}))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, RELAYED)
    try:
        returncode = receive(channel)[0]["returncode"]
    except (OSError, EOFError):
        returncode = 1  # the handler died: the program's end is unknown
    _end(returncode)


def _inherited_fds() -> list[int]:
    """The descriptors this process inherited: stdin, stdout, stderr and those multiprocessing passed."""
    numbers = sorted(int(name) for name in os.listdir("/proc/self/fd"))
    inherited = []
    for fd in numbers:
        try:
            if os.get_inheritable(fd):
                inherited.append(fd)
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return inherited


def _execute_python(command: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, *command])


def _end(returncode: int) -> None:
    """Exit with ``returncode``; a negative one by being killed with that signal, as the program was."""
    if returncode < 0:
        signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
    os._exit(returncode if returncode >= 0 else 128 - returncode)

"""The processes a warm job spawns (``multiprocessing.get_context("spawn")``: nnU-Net's export, metric and
preprocessing pools) started as forks of a warm copy of the job instead of fresh interpreters that import torch
again (3.5 s of CPU each).

Before its program runs, a job (a fork of :mod:`.server`) forks its *spawn service*: a copy of itself as it is
then (its libraries imported, nothing of its program run), listening beside the launcher
(:func:`.launcher.socket_path`). The job points multiprocessing's spawn at the launcher
(``multiprocessing.set_executable``). For each launcher that connects, the service forks a handler; the handler forks
the worker, which puts the launcher's descriptors at their numbers and runs its ``-c`` program as ``python -c`` would
(:func:`.server.become`, :func:`.server.run_program`). The handler then reports the worker's end to the launcher,
sends it the signals the launcher passes on, and kills it if the launcher is killed. The service dies with the job.

A spawn the service cannot run as a fresh interpreter would is declined, and the launcher executes the real
interpreter: one whose variables differ from the job's at its start (apart from nnU-Net's; a library the server
imported read them), or whose descriptor numbers the worker has in use.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import multiprocessing
import os
import select
import signal
import socket

from .launcher import socket_path
from .protocol import interpreter_environment, receive, send

PR_SET_PDEATHSIG = 1
#: a Unix socket's path holds at most 108 bytes
MAX_SOCKET_PATH = 100


def start(launcher: str) -> dict | None:
    """In a job, before its program: fork the spawn service and point multiprocessing's spawn at ``launcher``.

    Returns None in the job (also where the service cannot start), and in each spawned worker its request for
    :func:`.server.become` and :func:`.server.run_program`."""
    job = os.getpid()
    path = socket_path(os.path.dirname(launcher), job)
    if len(path.encode()) > MAX_SOCKET_PATH or not _pidfds_work() or not os.access(launcher, os.X_OK):
        return None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)  # the server removes each job's socket when the job ends
        listener.listen(64)
        service = os.fork()
    except OSError:  # the job runs with fresh interpreters for its spawns
        listener.close()
        return None
    if service == 0:
        try:
            return _serve(listener, job)
        except BaseException:  # noqa: BLE001 - never run the job's program in the service or a handler
            os._exit(1)
    listener.close()
    multiprocessing.set_executable(launcher)
    return None


def _serve(listener: socket.socket, job: int) -> dict:
    """The spawn service: a handler per connection, until the job ends. Returns only in a worker."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL))
    if os.getppid() != job:  # the job ended before the line above
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the job's streams stay the job's
        os.dup2(devnull, fd)
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # ended handlers are reaped by the kernel
    while True:
        connection, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            return _handle(connection)
        connection.close()


def _handle(connection: socket.socket) -> dict:
    """One launcher's spawn: fork its worker and supervise it. Returns only in the worker."""
    request, fds = receive(connection)
    reason = _declined(request, fds, connection)
    if reason is not None:
        send(connection, {"fallback": reason})
        os._exit(0)
    worker = os.fork()
    if worker == 0:
        _place(fds, request["fds"], connection)
        return {"kind": "command", "target": request["program"], "arguments": request["arguments"],
                "env": request["env"], "cwd": request["cwd"], "path0": "", "new_session": False,
                "sigint_ignored": request["sigint_ignored"]}
    for fd in fds:
        os.close(fd)
    with contextlib.suppress(OSError):  # a launcher killed meanwhile: _supervise kills the worker
        send(connection, {"started": worker})
    _supervise(connection, worker)


def _declined(request: dict, fds: list[int], connection: socket.socket) -> str | None:
    """Why the worker could not run ``request`` as a fresh interpreter would, or None."""
    if interpreter_environment(request["env"]) != interpreter_environment(dict(os.environ)):
        return "its environment differs from the one the job started with"
    if len(fds) != len(request["fds"]):
        return "descriptors were lost on the way"
    ours = {*fds, connection.fileno(), 0, 1, 2}
    if any(target not in ours and _is_open(target) for target in request["fds"]):
        return "a descriptor number is in use"
    return None


def _place(fds: list[int], targets: list[int], connection: socket.socket) -> None:
    """Put the received ``fds`` at the numbers ``targets`` (inheritable, as the launcher had them); close the rest
    of what the handler opened."""
    floor = max([*fds, *targets, connection.fileno()]) + 1
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, floor) for fd in fds]
    for fd in fds:
        os.close(fd)
    connection.close()
    for fd, target in zip(moved, targets):
        os.dup2(fd, target)
        os.close(fd)


def _supervise(connection: socket.socket, worker: int) -> None:
    """Pass the launcher's signals to the worker (kill it when the launcher is gone), report its end, exit."""
    ended = os.pidfd_open(worker)
    watched = [connection, ended]
    while ended not in select.select(watched, [], [])[0]:
        try:
            os.kill(worker, receive(connection)[0]["signal"])
        except (OSError, EOFError):  # the launcher was killed
            os.kill(worker, signal.SIGKILL)
            watched = [ended]
    _, status = os.waitpid(worker, 0)
    try:
        send(connection, {"returncode": os.waitstatus_to_exitcode(status)})
    finally:
        os._exit(0)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _pidfds_work() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):  # before Linux 5.3
        return False
    return True

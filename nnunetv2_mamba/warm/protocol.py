"""The messages between the warm interpreter's processes: a length, a JSON object and file descriptors attached
(standard library only: the spawn launcher imports it)."""
from __future__ import annotations

import json
import socket
import struct

HEADER = struct.Struct("!I")
#: the most descriptors a message carries: a job's stdin, stdout and stderr, and those a spawned process inherits
MAX_FDS = 32


def send(channel: socket.socket, message: dict, fds: list[int] = ()) -> None:
    """One message: its length, then its JSON, with ``fds`` attached."""
    data = json.dumps(message).encode()
    socket.send_fds(channel, [HEADER.pack(len(data)) + data], list(fds))


def receive(channel: socket.socket) -> tuple[dict, list[int]]:
    """One message and the descriptors attached to it; EOFError when the other end has closed."""
    data, fds, _, _ = socket.recv_fds(channel, HEADER.size, MAX_FDS)
    if not data:
        raise EOFError
    size, = HEADER.unpack(data)
    body = b""
    while len(body) < size:
        chunk = channel.recv(size - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return json.loads(body), fds


#: variables that no library the server keeps imported reads at import: nnU-Net's and ours (their packages are
#: imported again in each job), and pytest's name of the running test
PER_JOB_PREFIXES = ("nnUNet_", "PYTEST_")


def interpreter_environment(env: dict[str, str]) -> dict[str, str]:
    """The variables a warm server and a job must agree on: all but the :data:`PER_JOB_PREFIXES` ones."""
    return {name: value for name, value in env.items() if not name.startswith(PER_JOB_PREFIXES)}

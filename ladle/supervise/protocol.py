"""The monitor's wire format: one JSON object per SOCK_SEQPACKET message, with descriptors
attached (SCM_RIGHTS) when a request hands the monitor a terminal or a pipe.

Packets keep message boundaries, so there is no framing to get wrong, and a descriptor always
arrives with the message that explains it. Requests carry an `id`; the reply carries the same `id`,
and events (a process's exit, for whoever waits on it) carry `event`.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

MAX_MESSAGE = 1 << 20
MAX_FDS = 8
SOCKET_NAME = "monitor.sock"


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | tuple[int, ...] = ()) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"monitor message too large ({len(data)} bytes)")
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message and its descriptors; (None, []) when the peer has closed."""
    data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    try:
        message = json.loads(data)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        for fd in fds:
            os.close(fd)
        return {"id": None, "op": "?", "bad": data[:60].decode(errors="replace")}, []
    return message, fds

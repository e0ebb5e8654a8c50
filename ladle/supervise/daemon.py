"""Start a detached process (double fork + setsid) and wait for its report on a socket pair.

The report is how `ladle start` knows the pot really runs: the daemon writes one line and shuts
its side down once the main process has exec'd (`R <json>`), or writes why not (`E <reason>`).
The caller records the run and answers on the same channel (see `supervisor.RECORDED`), so no pot
runs unrecorded and no exit is recorded before its start. Nothing is polled and nothing sleeps.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import socket
from collections.abc import Callable
from typing import NoReturn


def spawn(body: Callable[[socket.socket], int]) -> tuple[str, socket.socket]:
    """Run `body(channel)` in a daemon; return its report and our end of the channel, which the
    caller closes once it has acted on the report."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid = os.fork()
        if pid == 0:
            ours.close()
            _intermediate(body, theirs)
        theirs.close()
        os.waitpid(pid, 0)
        chunks = []
        while data := ours.recv(65536):
            chunks.append(data)
    except BaseException:
        ours.close()
        raise
    return b"".join(chunks).decode(errors="replace").strip(), ours


def _intermediate(body: Callable[[socket.socket], int], chan: socket.socket) -> NoReturn:
    code = 1
    try:
        gc.disable()
        os.setsid()  # no controlling terminal, its own session: immune to the caller's Ctrl-C
        code = _daemon(body, chan) if os.fork() == 0 else 0
    except BaseException as e:
        with contextlib.suppress(OSError):
            chan.sendall(f"E cannot start the supervisor: {e}".encode())
    os._exit(code)


def _daemon(body: Callable[[socket.socket], int], chan: socket.socket) -> int:
    fd = fcntl.fcntl(chan.detach(), fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open("/dev/null", os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    close_other_fds(fd)  # never hold the caller's lock files or database
    os.chdir("/")
    os.umask(0o022)
    sock = socket.socket(fileno=fd)
    try:
        return body(sock)
    except BaseException as e:
        with contextlib.suppress(OSError):
            sock.sendall(f"E supervisor failed: {type(e).__name__}: {e}".encode())
        return 1


def close_other_fds(*keep: int) -> None:
    """Close every descriptor >= 3 not in `keep` (os.closerange uses close_range(2) on Linux)."""
    start = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 0x7FFFFFFF)

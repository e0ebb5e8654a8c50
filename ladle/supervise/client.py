"""Talking to the host's monitor, and starting it (through its keeper) when nobody answers.

A `MonitorClient` is one connection; the library keeps one per thread. Requests are answered in
order; an `events` request (exec, an attached run) is answered at once and later followed by
events on the same connection, which `wait_event` reads.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import socket
import sys
from typing import Any

from ladle.errors import HostError, LadleError, StateError, UsageError
from ladle.supervise import protocol

START_TIMEOUT = 15.0
_ERRORS: dict[str, type[LadleError]] = {"usage": UsageError, "state": StateError, "host": HostError}
_KEEPER = ("import sys; sys.path[:0] = [sys.argv.pop(1)]; "
           "from ladle.supervise.keeper import main; main(sys.argv[1:])")


def package_root() -> str:
    """The directory that holds the `ladle` package (put first on sys.path of the processes
    ladle starts with `python -S`, which skips site-packages)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def python_argv(code: str) -> list[str]:
    """Run `code` in a fresh, minimal interpreter that finds this ladle."""
    return [sys.executable, "-S", "-c", code, package_root()]


class MonitorError(HostError):
    """The monitor refused or failed a request."""


class _Gone(Exception):
    """The monitor closed the connection."""


class MonitorClient:
    """One connection to the monitor of the state root `root`."""

    def __init__(self, root: str, monitor_argv: list[str]) -> None:
        self.root = root
        self.monitor_argv = monitor_argv
        self.path = os.path.join(root, "run", protocol.SOCKET_NAME)
        self._sock: socket.socket | None = None
        self._next = 0
        self._events: list[dict[str, Any]] = []

    # Connecting --------------------------------------------------------------------------------

    def _connect_once(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            return None
        return sock

    @property
    def sock(self) -> socket.socket:
        if self._sock is None:
            sock = self._connect_once()
            if sock is None:
                self._start_keeper()
                sock = self._connect_once()
            if sock is None:
                raise HostError(f"the monitor of {self.root} does not answer (see {self.root}/logs/monitor.log)")
            self._sock = sock
        return self._sock

    def _start_keeper(self) -> None:
        """Start a detached keeper (double fork, own session) and wait until it listens."""
        from ladle.supervise.keeper import monitor_idle
        monitor_idle()  # a bad value fails here, not in every monitor the keeper tries
        r, w = os.pipe()
        log = os.path.join(self.root, "logs", "monitor.log")
        argv = [*python_argv(_KEEPER), self.root, str(w), json.dumps(self.monitor_argv)]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child execs or exits at once
            try:
                os.setsid()
                if os.fork() == 0:
                    os.chdir("/")
                    os.umask(0o022)
                    null = os.open("/dev/null", os.O_RDONLY)
                    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    os.dup2(null, 0)
                    os.dup2(out, 1)
                    os.dup2(out, 2)
                    os.set_inheritable(w, True)
                    os.closerange(3, w)
                    os.closerange(w + 1, 0x7FFFFFFF)
                    os.execv(argv[0], argv)
            finally:
                os._exit(0)
        os.close(w)
        try:
            os.waitpid(pid, 0)
            ready, _, _ = select.select([r], [], [], START_TIMEOUT)
            answer = os.read(r, 1) if ready else b""
        finally:
            os.close(r)
        if answer not in (b"R", b"B"):  # B: another keeper won the race; it listens
            raise HostError(f"the monitor of {self.root} could not start (see {log})")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # Requests ----------------------------------------------------------------------------------

    def request(self, op: str, fds: list[int] | tuple[int, ...] = (), **args: Any) -> dict[str, Any]:
        """Send one request and return its reply; raise the error it carries."""
        self._next += 1
        rid = self._next
        for attempt in (1, 2):
            fresh = self._sock is None
            try:
                protocol.send(self.sock, {"id": rid, "op": op, **args}, fds)
            except (BrokenPipeError, ConnectionResetError):  # a monitor that died since: it never saw it
                self.close()
                if attempt == 2:
                    raise HostError("the monitor went away") from None
                continue
            try:
                message = self._answer(rid)
                break
            except _Gone:
                # A connection that went away before its first answer was never served (the
                # monitor went idle as we connected): connect again, once.
                self.close()
                if attempt == 2 or not fresh:
                    raise HostError("the monitor went away while ladle waited for it") from None
        if "error" in message:
            kind = _ERRORS.get(str(message.get("kind")), MonitorError)
            raise kind(str(message["error"]))
        return message

    def _answer(self, rid: int) -> dict[str, Any]:
        while True:  # events (a process's exit) may come first: they are kept for wait_event
            message = self._receive()
            if message.get("event"):
                self._events.append(message)
            elif message.get("id") == rid:
                return message

    def _receive(self, timeout: float | None = None) -> dict[str, Any]:
        if timeout is not None:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                raise TimeoutError
        try:
            message, fds = protocol.receive(self.sock)
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                raise
            message, fds = None, []
        for fd in fds:
            os.close(fd)
        if message is None:
            raise _Gone
        return message

    def wait_event(self, timeout: float | None = None) -> dict[str, Any]:
        """The next event on this connection (a process's exit...)."""
        if self._events:
            return self._events.pop(0)
        try:
            return self._receive(timeout)
        except _Gone:
            self.close()
            raise HostError("the monitor went away while ladle waited for it") from None

    def pending_events(self) -> bool:
        return bool(self._events)

    def fileno(self) -> int:
        return self.sock.fileno()

    def __enter__(self) -> MonitorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.close()

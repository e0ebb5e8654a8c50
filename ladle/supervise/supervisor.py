"""The supervisor: the process that owns a pot from start to exit.

It starts the pot (through a host-specific `launch`), records the run, forwards signals to the
pot's pid 1, waits for it with a blocking wait (no polling; an idle supervisor costs no CPU) and
records how it ended. `supervise` is the body of the detached daemon behind `ladle start`;
`foreground` is the same job done by the calling process for `ladle run`.

A `ladle stop` tells the supervisor it is stopping the pot with STOP_NOTICE, a real-time signal no
program uses, so that the run ends as 'stopped' rather than 'exited', and the stopper records it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Protocol

from ladle import proc
from ladle.supervise import init, runs

STOP_NOTICE = signal.SIGRTMIN + 3
RECORDED = b"K"  # the starter's answer to `R <row>`: the run is in the state store


class Started(Protocol):
    @property
    def init_pid(self) -> int: ...
    @property
    def init_start(self) -> int | None: ...
    @property
    def main_pid(self) -> int | None: ...


# launch(stdio, take_tty) -> Started; raises with a one-line reason.
Launch = Callable[[Sequence[int], bool], Started]


class _Relay:
    """Signal handlers shared by both modes: forward to pid 1, note a stop."""

    def __init__(self) -> None:
        self.init_pid = 0
        self.pending: list[int] = []
        self.stopping = False
        self.noticed = False

    def forward(self, sig: int, frame: FrameType | None) -> None:
        if sig in init.STOPPING:
            self.stopping = True
        if not self.init_pid:
            self.pending.append(sig)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.init_pid, sig)

    def notice(self, sig: int, frame: FrameType | None) -> None:
        self.stopping = True
        self.noticed = True

    def install(self) -> dict[int, Any]:
        old = {int(s): signal.signal(s, self.forward) for s in init.FORWARDED}
        signal.signal(STOP_NOTICE, self.notice)  # kept for good: a late notice must not kill us
        return old

    def started(self, init_pid: int) -> None:
        self.init_pid = init_pid
        for sig in self.pending:
            self.forward(sig, None)
        self.pending.clear()


def _wait_for(pid: int) -> int:
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255 << 8
        if got == pid:
            return status


def supervise(name: str, log_path: str, store_path: str | None, exit_path: str, launch: Launch,
              chan: socket.socket) -> int:
    """Body of the detached supervisor. It reports `R <run row>` on `chan` once the pot runs; the
    caller records it and answers RECORDED (if it does not, the pot is killed: no run goes
    unrecorded). Then it waits for pid 1 and records the end: itself through a
    fresh interpreter (`record`), or, when `ladle stop` announced itself, through `exit_path`,
    which the waiting stopper records (a stop then costs no interpreter start)."""
    from ladle.hosts.linux import syscalls as sc

    for sig in init.FORWARDED:  # start from default dispositions, whatever the caller had set
        signal.signal(sig, signal.SIG_DFL)
    relay = _Relay()
    relay.install()
    sc.set_title(f"ladle-sup {name}")
    sc.set_child_subreaper()
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    me = os.getpid()
    my_start = proc.start_time(me)
    try:
        started = launch((0, 1, 2), False)
    except Exception as e:
        chan.sendall(f"E {e}".encode())
        return 1
    row = runs.running(me, my_start, started.init_pid, started.init_start, started.main_pid)
    relay.started(started.init_pid)
    chan.sendall(("R " + json.dumps(row)).encode())
    chan.shutdown(socket.SHUT_WR)
    if chan.recv(1) != RECORDED:  # the caller died or failed before recording the run: undo
        os.kill(started.init_pid, signal.SIGKILL)
        _wait_for(started.init_pid)
        return 1
    chan.close()
    status = _wait_for(started.init_pid)
    end = runs.ended(row, "stopped" if relay.stopping else "exited", init.exit_code(status))
    if relay.noticed:
        _write_exit(exit_path, end)
        return 0
    if store_path:
        from ladle.supervise.record import exec_recorder

        exec_recorder(store_path, name, end)
    return 0


def _write_exit(path: str, row: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(row, f)
    os.replace(tmp, path)


def read_exit(path: str, supervisor_pid: int | None) -> dict[str, Any] | None:
    """The end of a run as its supervisor left it for `ladle stop` (and remove it)."""
    try:
        with open(path) as f:
            row: dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        return None
    os.unlink(path)
    return row if row.get("supervisor_pid") == supervisor_pid else None


def owns_terminal(fd: int = 0) -> bool:
    """Is `fd` our controlling terminal, with us in its foreground process group?"""
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def foreground(name: str, log_path: str, store_path: str | None, launch: Launch, log: bool) -> int:
    """Run the pot with this process as its supervisor; return the main process's exit code.

    The main process gets our stdin, stdout and stderr (through a tee to the log with `log`), and
    the terminal's foreground process group, so Ctrl-C reaches it exactly once.
    """
    take_tty = owns_terminal(0)
    relay = _Relay()
    old = relay.install()
    old[int(signal.SIGTTOU)] = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    old[int(signal.SIGTTIN)] = signal.signal(signal.SIGTTIN, signal.SIG_IGN)
    log_fd = -1
    pipes: dict[int, int] = {}  # read end -> where it goes (1 or 2)
    stdio = [0, 1, 2]
    me = os.getpid()
    try:
        if log:
            os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
            log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            for dest in (1, 2):
                r, w = os.pipe()
                pipes[r] = dest
                stdio[dest] = w
        try:
            started = launch(stdio, take_tty)
        except Exception as e:
            runs.write(store_path, name, runs.failed(me, proc.start_time(me), str(e)))
            raise
        finally:
            for fd in stdio[1:]:
                if fd > 2:
                    os.close(fd)
        row = runs.running(me, proc.start_time(me), started.init_pid, started.init_start,
                           started.main_pid)
        runs.write(store_path, name, row)
        relay.started(started.init_pid)
        status = _tee_until_exit(started.init_pid, pipes, log_fd) if pipes \
            else os.waitpid(started.init_pid, 0)[1]
        code = init.exit_code(status)
        runs.write(store_path, name, runs.ended(row, "stopped" if relay.stopping else "exited", code),
                   only_if_supervisor=me)
        return code
    finally:
        if take_tty:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(0, os.getpgrp())
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for fd in pipes:
            os.close(fd)
        if log_fd >= 0:
            os.close(log_fd)


def _write_all(fd: int, data: bytes) -> bool:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        return False
    return True


def _tee_until_exit(init_pid: int, pipes: dict[int, int], log_fd: int) -> int:
    """Copy the pot's stdout and stderr to ours and to the log until its pid 1 exits."""
    pidfd = os.pidfd_open(init_pid)
    live = dict(pipes)
    dead_dests: set[int] = set()
    try:
        exited = False
        while live and not exited:
            readable, _, _ = select.select([pidfd, *live], [], [])
            for fd in readable:
                if fd == pidfd:
                    exited = True
                    continue
                data = os.read(fd, 65536)
                if not data:
                    del live[fd]
                    continue
                _copy(data, live[fd], log_fd, dead_dests)
        for fd, dest in live.items():  # pid 1 is gone, and with it every writer: drain
            os.set_blocking(fd, False)
            while True:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not data:
                    break
                _copy(data, dest, log_fd, dead_dests)
        return os.waitpid(init_pid, 0)[1]
    finally:
        os.close(pidfd)


def _copy(data: bytes, dest: int, log_fd: int, dead: set[int]) -> None:
    if dest not in dead and not _write_all(dest, data):
        dead.add(dest)
    _write_all(log_fd, data)

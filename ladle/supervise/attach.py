"""The command's side of a process it waits for (`exec`, an attached `run`): relay its output
and terminal, pass on the signals this command receives, and return its exit code.

The monitor tells of the exit with an event on the connection that asked. Signals (Ctrl-C in a
terminal reaches this command, not the pot) are noted by handlers and forwarded from the loop,
woken through a wakeup pipe, so no I/O happens inside a signal handler.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ladle.platform import write_all
from ladle.supervise.client import MonitorClient

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
Copy = Callable[[bytes], None]


@contextlib.contextmanager
def _forwarding(terminal: bool) -> Iterator[tuple[int, list[int]]]:
    """Note the signals this process gets (main thread only; elsewhere none are caught), and the
    window size changes of our terminal when relaying one."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield -1, pending
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    os.set_blocking(r, False)
    old_fd = signal.set_wakeup_fd(w)
    caught = (*FORWARDED, signal.SIGWINCH) if terminal else FORWARDED
    old = {s: signal.signal(s, lambda sig, frame: pending.append(sig)) for s in caught}
    try:
        yield r, pending
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(old_fd)
        os.close(r)
        os.close(w)


def wait(monitor: MonitorClient, signal_target: dict[str, Any], outputs: dict[int, Copy] | None = None,
         terminal: int | None = None) -> int | None:
    """Until the exit event comes (and every output pipe has reached EOF): copy each output pipe
    to its `Copy`, relay `terminal` (a pty master) with our stdin and stdout, forward signals to
    `signal_target` (`pot`, and `pid` for an exec). Returns the exit code."""
    from ladle.supervise import tty

    outputs = dict(outputs or {})
    code: int | None = None
    exited = False
    term_open = terminal is not None
    stdin_open = term_open
    if terminal is not None:
        tty.copy_winsize(0, terminal)
    with _forwarding(terminal is not None) as (wake, pending):
        while not exited or outputs:
            readers = [*outputs, *([wake] if wake >= 0 else [])]
            if not exited:
                readers.append(monitor.fileno())
            if term_open:
                readers.append(terminal)  # type: ignore[arg-type]
            if stdin_open:
                readers.append(0)
            readable = [monitor.fileno()] if monitor.pending_events() else select.select(readers, [], [])[0]
            if wake in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 512)
                while pending:
                    sig = pending.pop(0)
                    if sig == signal.SIGWINCH and terminal is not None:
                        tty.copy_winsize(0, terminal)
                        continue
                    with contextlib.suppress(Exception):
                        monitor.request("signal", signal=int(sig), **signal_target)
            for fd in [f for f in readable if f in outputs]:
                data = os.read(fd, 65536)
                if data:
                    outputs[fd](data)
                else:
                    del outputs[fd]
            if term_open and terminal in readable and not _pump(terminal, 1):
                term_open = False
            if stdin_open and 0 in readable:
                data = os.read(0, 65536)
                if data and terminal is not None:
                    write_all(terminal, data)
                else:
                    stdin_open = False
            if not exited and monitor.fileno() in readable:
                event = monitor.wait_event()
                if event.get("event") == "exit" and _matches(event, signal_target):
                    code, exited = event.get("exit_code"), True
                    while term_open and _pump(terminal, 1, block=False):  # type: ignore[arg-type]
                        pass
    return code


def exec_in(monitor: MonitorClient, request: dict[str, Any], terminal: tuple[int, int] | None) -> int | None:
    """Run a command in a pot (the monitor's `exec`) on our stdin, stdout and stderr, or on a
    terminal (`master`, `slave`: the slave is the command's, the master is relayed to ours in raw
    mode); both ends are closed here. Returns its exit code."""
    from ladle.supervise import tty

    target = {"pot": request["pot"]}
    if terminal is None:
        target["pid"] = monitor.request("spawn", fds=[0, 1, 2], role="exec", **request)["pid"]
        return wait(monitor, target)
    master, slave = terminal
    try:
        try:
            target["pid"] = monitor.request("spawn", fds=[slave, slave, slave], role="exec", **request)["pid"]
        finally:
            os.close(slave)
        with tty.raw(0):
            return wait(monitor, target, terminal=master)
    finally:
        os.close(master)


def _matches(event: dict[str, Any], target: dict[str, Any]) -> bool:
    if "pid" in target:
        return bool(event.get("pid") == target["pid"])
    return bool(event.get("pot") == target.get("pot"))


def _pump(src: int, dst: int, block: bool = True) -> bool:
    if not block:
        readable, _, _ = select.select([src], [], [], 0)
        if not readable:
            return False
    try:
        data = os.read(src, 65536)
    except OSError:  # EIO: no process holds the terminal's other side any more
        return False
    if not data:
        return False
    write_all(dst, data)
    return True

"""Wait for and signal processes through pidfds: no polling, and no pid-reuse accidents.

A pid is only trusted together with its start time (`ladle.proc`); once a pidfd is open and the
start time checked again, the pidfd names that process for good.
"""

from __future__ import annotations

import os
import select
import signal

from ladle import proc


def open_verified(pid: int | None, start: int | None) -> int | None:
    """A pidfd for `pid` if it still is the process that started at `start`, else None."""
    if not pid or not proc.alive(pid, start):
        return None
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return None
    if not proc.alive(pid, start):
        os.close(fd)
        return None
    return fd


def wait(fd: int, timeout: float | None) -> bool:
    """Wait until the process has exited (zombie or reaped); True if it did within `timeout`."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


def send(fd: int, sig: int) -> bool:
    """Signal the process; False if it has already exited."""
    try:
        signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        return False
    return True

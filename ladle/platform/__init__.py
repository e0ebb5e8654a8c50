"""The operating system's process and file primitives, behind one small interface chosen at run time.

ladle runs on FreeBSD and on Linux; the few things that differ below the host drivers live here:

- process identity that survives pid reuse: a pid with its start time (`start_time`, `alive`);
- waiting for any process to exit without polling (`ExitWatcher`: pidfds in an epoll set on
  Linux, a kqueue with EVFILT_PROC on FreeBSD);
- following a growing file (`FileWatcher`: inotify on Linux, EVFILT_VNODE on FreeBSD);
- becoming the reaper of orphaned descendants (`acquire_reaper`) and naming a process (`set_title`).

`current` is the implementation for this system. Nothing binds a Linux-only libc symbol at import:
the C library is looked up the first time a call needs it, so every module imports on both systems.
"""

from __future__ import annotations

import os
import sys

from ladle.platform.base import ExitWatcher, FileWatcher, Platform

__all__ = ["ExitWatcher", "FileWatcher", "Platform", "alive", "current", "start_time", "write_all"]


def _choose() -> Platform:
    if sys.platform.startswith("freebsd"):
        from ladle.platform.freebsd import FreeBSD
        return FreeBSD()
    from ladle.platform.linux import Linux
    return Linux()


current: Platform = _choose()


def start_time(pid: int) -> int | None:
    """When `pid` started (an opaque number, stable for the process's life); None if it is gone."""
    return current.start_time(pid)


def alive(pid: int | None, started: int | None) -> bool:
    """True if `pid` still names the process that started at `started` (None: any process)."""
    if not pid:
        return False
    now = current.start_time(pid)
    return now is not None and (started is None or now == started)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data`: a pipe, a socket or a terminal may take it in parts."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]

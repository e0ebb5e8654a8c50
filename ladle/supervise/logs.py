"""`ladle logs -f`: a pot's log and, while the pot runs, what is appended to it.

Following waits on the platform's file watcher (inotify on Linux, EVFILT_VNODE on FreeBSD); the
select timeout only bounds how long a stopped pot goes unnoticed, it is not a polling sleep.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable, Iterator

from ladle import platform

RECHECK = 0.5  # seconds between still_running() checks while the log is quiet


def follow(path: str, still_running: Callable[[], bool]) -> Iterator[bytes]:
    """The log's chunks, then new ones as they come, until the pot stops (then the rest)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    watcher = platform.current.file_watcher(path)
    fd = -1
    offset = 0
    try:
        while True:
            if fd < 0:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    offset = 0
                except FileNotFoundError:
                    fd = -1
            if fd >= 0:
                if os.fstat(fd).st_size < offset:  # truncated: start again from the top
                    offset = 0
                for chunk in _read_from(fd, offset):
                    offset += len(chunk)
                    yield chunk
            if not still_running():
                if fd >= 0:
                    yield from _read_from(fd, offset)
                return
            readable, _, _ = select.select([watcher.fileno()], [], [], RECHECK)
            if readable:
                watcher.clear()
    finally:
        if fd >= 0:
            os.close(fd)
        watcher.close()


def _read_from(fd: int, offset: int) -> Iterator[bytes]:
    while chunk := os.pread(fd, 65536, offset):
        offset += len(chunk)
        yield chunk

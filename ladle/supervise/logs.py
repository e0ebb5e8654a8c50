"""`ladle logs [-f]`: print a pot's log and, with follow, what is appended while it runs.

Following waits on inotify (IN_MODIFY on the file, IN_CREATE in its directory until it exists);
the select timeout only bounds how long a stopped pot goes unnoticed, it is not a polling sleep.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable
from typing import BinaryIO

RECHECK = 0.5  # seconds between still_running() checks while the log is quiet


def dump(path: str, out: BinaryIO) -> None:
    """Print the whole log (missing means empty)."""
    try:
        with open(path, "rb") as f:
            while chunk := f.read(65536):
                out.write(chunk)
    except FileNotFoundError:
        pass
    out.flush()


def follow(path: str, still_running: Callable[[], bool], out: BinaryIO) -> None:
    """Print the log, then new data as it arrives, until the pot stops (then the rest)."""
    from ladle.hosts.linux import syscalls as sc

    ino = sc.inotify_init()
    fd = -1
    try:
        directory = os.path.dirname(os.path.abspath(path))
        sc.inotify_add_watch(ino, directory, sc.IN_CREATE | sc.IN_MOVED_TO)
        offset = 0
        while True:
            if fd < 0:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    sc.inotify_add_watch(ino, path, sc.IN_MODIFY | sc.IN_ATTRIB)
                    offset = 0
                except FileNotFoundError:
                    fd = -1
            if fd >= 0:
                if os.fstat(fd).st_size < offset:  # truncated: start again from the top
                    offset = 0
                offset = _copy_from(fd, offset, out)
            running = still_running()
            if not running:
                if fd >= 0:
                    _copy_from(fd, offset, out)
                return
            readable, _, _ = select.select([ino], [], [], RECHECK)
            if readable:
                _drain(ino)
    finally:
        if fd >= 0:
            os.close(fd)
        os.close(ino)


def _copy_from(fd: int, offset: int, out: BinaryIO) -> int:
    wrote = False
    while chunk := os.pread(fd, 65536, offset):
        out.write(chunk)
        offset += len(chunk)
        wrote = True
    if wrote:
        out.flush()
    return offset


def _drain(ino: int) -> None:
    try:
        while os.read(ino, 65536):
            pass
    except BlockingIOError:
        pass

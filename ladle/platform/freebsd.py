"""FreeBSD: sysctl kern.proc.pid for identity, kqueue for exits and files, procctl for reaping.

`select.kqueue` exists only on the BSDs, so it is reached through `getattr` (typeshed hides it on
Linux); the C library is looked up on first use.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import struct
from collections.abc import Callable
from functools import cache
from typing import Any

from ladle.platform.base import ExitWatcher, FileWatcher, Platform

_CTL_KERN, _KERN_PROC, _KERN_PROC_PID = 1, 14, 1
_KINFO_PROC_SIZE = 1088  # amd64 and arm64 (sys/user.h)
_KI_START = 336          # struct timeval ki_start
_KI_STAT = 388           # char ki_stat
_SZOMB = 5
_P_PID, _PROC_REAP_ACQUIRE = 0, 2


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _kq() -> Any:
    return getattr(select, "kqueue")()  # noqa: B009


def _kevent(ident: int, filter_name: str, flags: int, fflags: int) -> Any:
    return getattr(select, "kevent")(ident, filter=getattr(select, filter_name), flags=flags,  # noqa: B009
                                     fflags=fflags)


def parse_kinfo_proc(buf: bytes, zombies: bool = False) -> int | None:
    """ki_start as microseconds since the epoch, or None for a zombie unless `zombies`."""
    if len(buf) < _KI_STAT + 1 or (buf[_KI_STAT] == _SZOMB and not zombies):
        return None
    sec, usec = struct.unpack_from("qq", buf, _KI_START)
    return int(sec) * 1_000_000 + int(usec)


class _KqueueProcWatcher(ExitWatcher):
    def __init__(self) -> None:
        self._kq = _kq()
        self._pids: set[int] = set()

    def fileno(self) -> int:
        return int(self._kq.fileno())

    def _event(self, pid: int, flags: int) -> Any:
        return _kevent(pid, "KQ_FILTER_PROC", flags, getattr(select, "KQ_NOTE_EXIT"))  # noqa: B009

    def add(self, pid: int) -> bool:
        try:
            self._kq.control([self._event(pid, getattr(select, "KQ_EV_ADD"))], 0)  # noqa: B009
        except ProcessLookupError:
            return False
        self._pids.add(pid)
        return True

    def discard(self, pid: int) -> None:
        if pid in self._pids:
            self._pids.discard(pid)
            with contextlib.suppress(OSError):
                self._kq.control([self._event(pid, getattr(select, "KQ_EV_DELETE"))], 0)  # noqa: B009

    def exited(self) -> list[int]:
        gone = [int(ev.ident) for ev in self._kq.control(None, 64, 0)]
        self._pids.difference_update(gone)
        return gone

    def close(self) -> None:
        self._kq.close()


class _KqueueFileWatcher(FileWatcher):
    """EVFILT_VNODE on the file (writes, extension, attributes) or on its directory until it exists."""

    def __init__(self, path: str) -> None:
        self._kq = _kq()
        self._path = path
        self._fd = -1
        self._dir = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY | os.O_CLOEXEC)
        self._watch(self._dir)
        self._watch_file()

    def _watch(self, fd: int) -> None:
        fflags = 0
        for name in ("KQ_NOTE_WRITE", "KQ_NOTE_EXTEND", "KQ_NOTE_ATTRIB"):
            fflags |= getattr(select, name)
        ev = _kevent(fd, "KQ_FILTER_VNODE", getattr(select, "KQ_EV_ADD") | getattr(select, "KQ_EV_CLEAR"),  # noqa: B009
                     fflags)
        self._kq.control([ev], 0)

    def _watch_file(self) -> None:
        if self._fd < 0 and os.path.exists(self._path):
            self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
            self._watch(self._fd)

    def fileno(self) -> int:
        return int(self._kq.fileno())

    def clear(self) -> None:
        self._kq.control(None, 64, 0)
        self._watch_file()

    def close(self) -> None:
        for fd in (self._fd, self._dir):
            if fd >= 0:
                os.close(fd)
        self._kq.close()


class FreeBSD(Platform):
    name = "freebsd"

    def start_time(self, pid: int, zombies: bool = False) -> int | None:
        mib = (ctypes.c_int * 4)(_CTL_KERN, _KERN_PROC, _KERN_PROC_PID, pid)
        buf = ctypes.create_string_buffer(_KINFO_PROC_SIZE)
        size = ctypes.c_size_t(_KINFO_PROC_SIZE)
        if _libc().sysctl(mib, 4, buf, ctypes.byref(size), None, 0) != 0 or size.value == 0:
            return None
        return parse_kinfo_proc(buf.raw[:size.value], zombies)

    def exit_watcher(self) -> ExitWatcher:
        return _KqueueProcWatcher()

    def file_watcher(self, path: str) -> FileWatcher:
        return _KqueueFileWatcher(path)

    def acquire_reaper(self) -> None:
        if _libc().procctl(_P_PID, os.getpid(), _PROC_REAP_ACQUIRE, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), "procctl(PROC_REAP_ACQUIRE)")

    def jail_attacher(self, name: str) -> Callable[[], None]:
        import ctypes.util
        libjail = ctypes.CDLL(ctypes.util.find_library("jail") or "libjail.so", use_errno=True)
        libjail.jail_getid.argtypes = [ctypes.c_char_p]
        jid = libjail.jail_getid(name.encode())
        if jid < 0:
            raise OSError(errno.ESRCH, f"no jail {name}")
        attach = _libc().jail_attach

        def call() -> None:
            if attach(jid) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), f"jail_attach({jid})")
        return call

    def set_title(self, title: str) -> None:
        _libc().setproctitle(b"-%s", title.encode())

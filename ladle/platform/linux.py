"""Linux: /proc for identity, pidfds in epoll for exits, inotify for files, prctl for the rest."""

from __future__ import annotations

import ctypes
import os
import select
import struct
from functools import cache

from ladle.platform.base import ExitWatcher, FileWatcher, Platform

_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36
_IN_MODIFY, _IN_ATTRIB, _IN_MOVED_TO, _IN_CREATE = 0x002, 0x004, 0x080, 0x100


@cache
def _libc() -> ctypes.CDLL:
    """The C library, looked up on first use (never at import)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    return libc


def _check(ret: int, what: str) -> int:
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)
    return ret


class _PidfdWatcher(ExitWatcher):
    """An epoll set of pidfds: a pidfd becomes readable when its process exits."""

    def __init__(self) -> None:
        self._ep = select.epoll()
        self._fds: dict[int, int] = {}  # pid -> pidfd

    def fileno(self) -> int:
        return self._ep.fileno()

    def add(self, pid: int) -> bool:
        if pid in self._fds:
            return True
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        self._fds[pid] = fd
        self._ep.register(fd, select.EPOLLIN)
        return True

    def discard(self, pid: int) -> None:
        fd = self._fds.pop(pid, None)
        if fd is not None:
            self._ep.unregister(fd)
            os.close(fd)

    def exited(self) -> list[int]:
        ready = {fd for fd, _ in self._ep.poll(0)}
        gone = [pid for pid, fd in self._fds.items() if fd in ready]
        for pid in gone:
            self.discard(pid)
        return gone

    def close(self) -> None:
        for pid in list(self._fds):
            self.discard(pid)
        self._ep.close()


class _InotifyWatcher(FileWatcher):
    def __init__(self, path: str) -> None:
        libc = _libc()
        self._fd = _check(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC), "inotify_init1")
        self._path = path
        directory = os.path.dirname(os.path.abspath(path)) or "."
        try:
            _check(libc.inotify_add_watch(self._fd, os.fsencode(directory), _IN_CREATE | _IN_MOVED_TO),
                   f"inotify_add_watch {directory}")
            self._watch_file()
        except BaseException:
            os.close(self._fd)
            raise

    def _watch_file(self) -> None:
        if os.path.exists(self._path):
            _check(_libc().inotify_add_watch(self._fd, os.fsencode(self._path), _IN_MODIFY | _IN_ATTRIB),
                   f"inotify_add_watch {self._path}")

    def fileno(self) -> int:
        return self._fd

    def clear(self) -> None:
        created = False
        try:
            while data := os.read(self._fd, 65536):
                off = 0
                while off + 16 <= len(data):
                    _, mask, _, size = struct.unpack_from("iIII", data, off)
                    created = created or bool(mask & (_IN_CREATE | _IN_MOVED_TO))
                    off += 16 + size
        except BlockingIOError:
            pass
        if created:
            self._watch_file()

    def close(self) -> None:
        os.close(self._fd)


class Linux(Platform):
    name = "linux"

    def start_time(self, pid: int, zombies: bool = False) -> int | None:
        """Clock ticks since boot, from /proc/PID/stat; None for a gone process, and for a zombie
        unless `zombies` (its work is done, but a reaper may still want to know who it was)."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except (FileNotFoundError, ProcessLookupError):
            return None
        # The command name may contain spaces and parentheses: split after the last ')'.
        fields = data[data.rindex(b")") + 2:].split()
        if fields[0] == b"Z" and not zombies:
            return None
        return int(fields[19])

    def exit_watcher(self) -> ExitWatcher:
        return _PidfdWatcher()

    def file_watcher(self, path: str) -> FileWatcher:
        return _InotifyWatcher(path)

    def acquire_reaper(self) -> None:
        _check(_libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")

    def set_title(self, title: str) -> None:
        """The process name (comm, 15 bytes) and its command line, overwritten in place as
        setproctitle does, so that ps shows what a forked process is rather than its parent."""
        buf = ctypes.create_string_buffer(title.encode()[:15])
        _check(_libc().prctl(_PR_SET_NAME, ctypes.addressof(buf), 0, 0, 0), "prctl(PR_SET_NAME)")
        try:
            with open("/proc/self/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            start, end = int(fields[45]), int(fields[46])
        except (OSError, IndexError, ValueError):
            return
        if end <= start:
            return
        raw = title.encode()[: end - start - 1]
        ctypes.memset(start, 0, end - start)
        ctypes.memmove(start, raw, len(raw))

"""Relay a pseudo-terminal to ours, like `docker exec -t`: raw mode, window size, until exit."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import termios
import tty
from collections.abc import Iterator
from types import FrameType


def copy_winsize(src: int, dst: int) -> None:
    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


@contextlib.contextmanager
def raw(fd: int) -> Iterator[None]:
    """Our terminal in raw mode (keys, Ctrl-C included, go to the pot's terminal), restored after."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def relay(master: int, pid: int) -> int:
    """Copy stdin to `master` and `master` to stdout until process `pid` exits; its wait status."""
    pidfd = os.pidfd_open(pid)

    def on_winch(sig: int, frame: FrameType | None) -> None:
        copy_winsize(0, master)

    old = signal.signal(signal.SIGWINCH, on_winch)
    copy_winsize(0, master)
    inputs = [0, master, pidfd]
    try:
        with raw(0):
            while True:
                readable, _, _ = select.select(inputs, [], [])
                if master in readable and not _pump(master, 1):
                    inputs.remove(master)
                if 0 in readable:
                    data = os.read(0, 65536)
                    if data:
                        _write_all(master, data)
                    else:
                        inputs.remove(0)
                if pidfd in readable:
                    while master in inputs and _pump(master, 1, block=False):
                        pass
                    break
        return os.waitpid(pid, 0)[1]
    finally:
        signal.signal(signal.SIGWINCH, old)
        os.close(pidfd)


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
    _write_all(dst, data)
    return True


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]

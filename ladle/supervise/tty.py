"""Our terminal while relaying a pot's (`exec -t`): raw mode, and the window size passed on."""

from __future__ import annotations

import contextlib
import fcntl
import os
import termios
import tty
from collections.abc import Iterator


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

"""Per-object locks with fcntl: parallel commands on different pots never wait for each other."""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ladle.errors import Busy

DEFAULT_TIMEOUT = float(os.environ.get("LADLE_LOCK_TIMEOUT", "60"))


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Timeout


@contextmanager
def hold(root: str, name: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold the lock `name` (e.g. 'pot-web', 'global'), waiting up to `timeout` seconds.

    The kernel drops the lock when the holder dies, so a killed command never leaves it held.
    """
    path = os.path.join(root, "locks", f"{name}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if timeout <= 0:
                raise Busy(f"{name.replace('-', ' ', 1)} is busy: another ladle command is using it") from None
            _wait(fd, name, timeout)
        yield
    finally:
        os.close(fd)


def _wait(fd: int, name: str, timeout: float) -> None:
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except _Timeout:
        raise Busy(f"{name.replace('-', ' ', 1)} is busy: another ladle command held it for "
                   f"{timeout:g}s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)

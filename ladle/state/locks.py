"""Per-object locks with flock: parallel commands on different pots never wait for each other.

flock locks belong to an open file description, so two threads of one process that each open the
lock file exclude each other exactly like two processes do. Waiting with a timeout uses no signal
(SIGALRM works only in the main thread): a helper thread blocks in flock and hands the lock over
if it gets it in time; if it gets it too late, it lets go at once.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ladle.errors import Busy

DEFAULT_TIMEOUT = float(os.environ.get("LADLE_LOCK_TIMEOUT", "60"))


def _label(name: str) -> str:
    return name.replace("-", " ", 1)


@contextmanager
def hold(root: str, name: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold the lock `name` (e.g. 'pot-web', 'global'), waiting up to `timeout` seconds.

    The kernel drops the lock when the holder dies, so a killed command never leaves it held.
    """
    path = os.path.join(root, "locks", f"{name}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if timeout <= 0:
            os.close(fd)
            raise Busy(f"{_label(name)} is busy: another ladle command is using it") from None
        if not _wait(fd, timeout):  # the waiting thread owns fd now and closes it
            raise Busy(f"{_label(name)} is busy: another ladle command held it for {timeout:g}s") from None
    except BaseException:
        os.close(fd)
        raise
    try:
        yield
    finally:
        os.close(fd)


def _wait(fd: int, timeout: float) -> bool:
    """Block in flock on a helper thread for at most `timeout`; True once the lock is held here."""
    got = threading.Event()
    guard = threading.Lock()
    gave_up = False

    def waiter() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            return
        with guard:
            if gave_up:
                os.close(fd)  # too late: release it for whoever comes next
                return
            got.set()

    threading.Thread(target=waiter, name="ladle-lock-wait", daemon=True).start()
    if got.wait(timeout):
        return True
    with guard:
        if got.is_set():
            return True
        gave_up = True
    return False

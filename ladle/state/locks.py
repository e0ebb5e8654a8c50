"""Per-object locks with flock: parallel commands on different pots never wait for each other.

flock locks belong to an open file description, so two threads of one process that each open the
lock file exclude each other exactly like two processes do. Waiting with a timeout uses no signal
(SIGALRM works only in the main thread) and no helper thread: the lock is tried again, without
blocking, at growing intervals until the deadline. Nothing is left trying once we give up, so a
lock we gave up on is never taken late.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ladle.errors import Busy, UsageError

MAX_TIMEOUT = 86400.0


def default_timeout() -> float:
    """How long a command waits for another's lock: $LADLE_LOCK_TIMEOUT seconds, or 60."""
    raw = os.environ.get("LADLE_LOCK_TIMEOUT") or "60"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_TIMEOUT:  # nan too
        raise UsageError(f"LADLE_LOCK_TIMEOUT takes seconds from 0 to {MAX_TIMEOUT:g}, not {raw!r}")
    return value


def _label(name: str) -> str:
    return name.replace("-", " ", 1)


def subject_lock(subject: str) -> str:
    """The lock of an intent-log subject: 'pot:web' -> 'pot-web', 'global' -> 'global'. The
    one mapping, used by the commands that write a subject and by recovery that reads it."""
    kind, _, name = subject.partition(":")
    return f"{kind}-{name}" if name else kind


def lock_subject(name: str) -> str:
    """The intent-log subject of a lock name: 'pot-web' -> 'pot:web' (inverse of subject_lock)."""
    kind, sep, rest = name.partition("-")
    return f"{kind}:{rest}" if sep else kind


def _path(root: str, name: str) -> str:
    """The lock file of `name`, always directly in `<root>/locks` (made if missing): a '/' in a
    name (an old subject such as 'pots/web') is flattened, never a directory to open."""
    top = os.path.join(root, "locks")
    os.makedirs(top, mode=0o700, exist_ok=True)
    return os.path.join(top, name.replace("%", "%25").replace("/", "%2F") + ".lock")


@contextmanager
def hold(root: str, name: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock `name` (e.g. 'pot-web', 'global'), waiting up to `timeout` seconds (None:
    `default_timeout()`).

    The kernel drops the lock when the holder dies, so a killed command never leaves it held.
    """
    if timeout is None:
        timeout = default_timeout()
    path = _path(root, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if not _acquire(fd, timeout):
            raise Busy(f"{_label(name)} is busy: another ladle command " +
                       ("is using it" if timeout <= 0 else f"held it for {timeout:g}s"))
    except BaseException:
        os.close(fd)
        raise
    try:
        yield
    finally:
        os.close(fd)


def _acquire(fd: int, timeout: float) -> bool:
    """Try the lock until `timeout` has passed (once, for 0); True once it is held here."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)

"""The child's side of starting a process for the monitor: what every launcher does between fork
and exec, on either host.

The monitor forks; the child takes its standard descriptors, closes every other one, resets the
signal state Python changed, runs the launcher's host-specific preparation (joining a pot's
namespaces on Linux; nothing for `jexec` on FreeBSD), and execs. Whatever fails is written to the
report pipe as one line, `E <reason>`; the pipe is close-on-exec, so the monitor reads EOF exactly
when the exec succeeded.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SpawnError(Exception):
    """A child could not be prepared or its program not run; the message is one line."""


@dataclass
class Child:
    """A forked process whose exec is not confirmed yet: `report` is the read end of its report
    pipe (data: why it failed; EOF: it exec'd, or died)."""

    pid: int
    report: int


def report(fd: int, text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, f"E {text.splitlines()[0] if text else 'failed'}\n".encode())


def reason(exc: BaseException) -> str:
    if isinstance(exc, SpawnError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def default_signals() -> None:
    """Reset what Python changed (SIGPIPE and SIGXFSZ ignored, SIGINT handled) and unblock
    everything: an exec'd program would otherwise inherit it."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def take_stdio(fds: Sequence[int]) -> None:
    """Make `fds` this process's 0, 1 and 2 (duplicates first, so none is overwritten early)."""
    dups = [os.dup(fd) for fd in fds]
    for i, fd in enumerate(dups):
        os.dup2(fd, i)
    for fd in dups:
        if fd > 2:
            os.close(fd)


def close_all_but(keep: Sequence[int]) -> None:
    start = 3
    for fd in sorted(k for k in set(keep) if k >= 3):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 0x7FFFFFFF)


def search(file: str, env: dict[str, str]) -> list[str]:
    if "/" in file:
        return [file]
    return [os.path.join(d or ".", file) for d in env.get("PATH", DEFAULT_PATH).split(":")]


def exec_program(argv: list[str], env: dict[str, str]) -> NoReturn:
    """execve argv[0], searching PATH in the environment given (the target's, not ours)."""
    error: OSError | None = None
    for path in search(argv[0], env):
        try:
            os.execve(path, argv, env)
        except (FileNotFoundError, NotADirectoryError) as e:
            error = error or e
        except OSError as e:
            error = e
            if e.errno != errno.EACCES:  # keep looking past EACCES, like execvp
                break
    raise SpawnError(f"cannot run {argv[0]!r}: {error.strerror if error else 'No such file or directory'}")


def child(argv: list[str], env: dict[str, str], stdio: Sequence[int], report_fd: int,
          prepare: Callable[[], None], keep: Sequence[int] = (), new_session: bool = True) -> NoReturn:
    """The body of a forked child: never returns."""
    gc.disable()
    try:
        take_stdio(stdio)
        close_all_but([report_fd, *keep])
        if new_session:
            os.setsid()
        prepare()
        default_signals()
        exec_program(argv, env)
    except BaseException as e:
        report(report_fd, reason(e))
    os._exit(127)


def fork_child(argv: list[str], env: dict[str, str], stdio: Sequence[int], prepare: Callable[[], None],
               keep: Sequence[int] = (), new_session: bool = True,
               around_fork: Callable[[Callable[[], int]], int] | None = None) -> Child:
    """Fork a child that runs `prepare` then execs argv; `around_fork` may wrap the fork itself
    (to have the child born in another pid namespace)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        def fork() -> int:
            pid = os.fork()
            if pid == 0:
                os.close(r)
                child(argv, env, stdio, w, prepare, keep, new_session)
            return pid

        pid = around_fork(fork) if around_fork else fork()
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return Child(pid, r)

"""The pot's pid 1: forwards signals to the main process, reaps orphans, exits with its status.

It is a forked copy of the supervisor (never exec'd, so it costs only the pages it touches). It
waits with sigwaitinfo on a blocked signal set, which is how a namespace init receives signals at
all (the kernel drops default-action signals sent to it) and leaves no race between a signal and
the wait.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import NoReturn

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)
STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
WAITED = (*FORWARDED, signal.SIGCHLD)


def exit_code(status: int) -> int:
    """A wait status as a shell would report it: the exit code, or 128+N for signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 255


def run(main_pid: int, persistent: bool) -> NoReturn:
    """Serve as init until the main process ends (or, for a persistent pot, until stopped).

    The caller has WAITED blocked (since before it forked the main process, so no SIGCHLD is
    lost). Leaving this function kills everything left in the pid namespace: the kernel does that
    when a namespace's init exits.
    """
    code: int | None = None
    stopping = False
    while True:
        sig = signal.sigwaitinfo(WAITED).si_signo
        if sig == signal.SIGCHLD:
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid == main_pid:
                    code = exit_code(status)
                    main_pid = 0
            if main_pid == 0 and (stopping or not persistent):
                os._exit(code or 0)
            continue
        if sig in STOPPING:
            stopping = True
        if main_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(main_pid, sig)
        elif stopping:
            os._exit(code or 0)

"""Starting a pot's main process: a stand-in until the ladle supervisor (`ladle.supervise`) owns it.

`SPAWN(argv, log_path, jail)` starts `argv` (a `jexec ...` line) in the background with stdout
and stderr appended to the log, and returns its pid once the process is inside the jail. Tests
and the supervisor replace `SPAWN`; nothing else in the driver starts processes.

What this stand-in does not do yet, and the supervisor will: wait for the process and record its
exit status, restart it, and clean up after a non-persistent pot whose command exited (its jail
goes by itself; its mounts stay until `ladle stop` or `ladle gc`).
"""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Callable
from typing import Any

from ladle.errors import HostError

ATTACH_TIMEOUT = 30.0

SpawnFn = Callable[[list[str], str, str], int]


def popen_spawn(argv: list[str], log_path: str, jail: str) -> int:
    """Start `argv` detached from our terminal, logging to `log_path`; return once it is jailed."""
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True)
    except FileNotFoundError:
        raise HostError(f"{argv[0]}: command not found") from None
    finally:
        os.close(fd)
    wait_attached(proc, jail)
    return proc.pid


def wait_attached(proc: subprocess.Popen[bytes], jail: str, timeout: float = ATTACH_TIMEOUT) -> None:
    """Return when `proc` (a jexec) has entered its jail, by kqueue events, not by polling.

    Popen returns after `jexec` itself started; jexec attaches to the jail and then executes the
    command, so the next exec event (EVFILT_PROC NOTE_EXEC) means the process is in the jail. An
    exec that happened before the event was registered is caught by asking ps(1) for its jail id.
    """
    sel: Any = select  # kqueue exists on BSDs only, so typeshed hides it on Linux
    if not hasattr(sel, "kqueue"):
        raise HostError("starting jails needs FreeBSD (kqueue process events)")
    kq = sel.kqueue()
    try:
        event = sel.kevent(proc.pid, filter=sel.KQ_FILTER_PROC, flags=sel.KQ_EV_ADD,
                              fflags=sel.KQ_NOTE_EXEC | sel.KQ_NOTE_EXIT)
        try:
            kq.control([event], 0)
        except ProcessLookupError:
            _failed(proc, jail)
        if _jid(proc.pid) > 0:
            return
        for ev in kq.control(None, 1, timeout):
            if ev.fflags & sel.KQ_NOTE_EXIT:
                _failed(proc, jail)
            return
        raise HostError(f"the command of pot {jail} did not enter its jail within {timeout:g} s")
    finally:
        kq.close()


def _failed(proc: subprocess.Popen[bytes], jail: str) -> None:
    code = proc.wait()
    raise HostError(f"the command of pot {jail} exited at once with code {code}; see its log")


def _jid(pid: int) -> int:
    out = subprocess.run(["ps", "-o", "jid=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() else 0


SPAWN: SpawnFn = popen_spawn

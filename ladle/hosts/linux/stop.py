"""Stopping a pot on Linux, including one whose supervisor or processes already died.

pid 1 of the pot forwards SIGTERM to the main process; if the pot is not gone after stop_timeout,
SIGKILL to pid 1 makes the kernel kill every process of the pid namespace, and with the last one
the mount namespace and all the pot's mounts go. Every wait is on a pidfd; every pid is checked
against its start time first, so a reused pid is never signalled.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

from ladle.errors import HostError
from ladle.supervise import pidfd

if TYPE_CHECKING:
    from ladle.hosts.base import RuntimeSpec
    from ladle.state.store import Store

KILL_WAIT = 10.0  # seconds for a SIGKILLed namespace to be torn down
SUPERVISOR_WAIT = 10.0  # seconds for the supervisor to record the exit once pid 1 is gone


def stop(spec: RuntimeSpec, run: dict[str, Any], store: Store | None) -> None:
    from ladle.supervise.supervisor import STOP_NOTICE, read_exit

    sup = pidfd.open_verified(run.get("supervisor_pid"), run.get("supervisor_start"))
    if sup is not None and not _is_daemon(run["supervisor_pid"]):
        # `ladle run`: the supervisor is a command that carries on after the pot; it records the
        # end itself, and only needs the notice.
        pidfd.send(sup, STOP_NOTICE)
        os.close(sup)
        sup = None
    ini = pidfd.open_verified(run.get("init_pid"), run.get("init_start"))
    try:
        if sup is not None:
            pidfd.send(sup, STOP_NOTICE)
        if ini is not None:
            _exec_stop(spec, run)
            pidfd.send(ini, signal.SIGTERM)
            if not pidfd.wait(ini, spec.stop_timeout):
                pidfd.send(ini, signal.SIGKILL)
                if not pidfd.wait(ini, KILL_WAIT):
                    raise HostError(f"pot {spec.name}: its pid 1 survived SIGKILL for {KILL_WAIT:g}s")
        if sup is not None and not pidfd.wait(sup, SUPERVISOR_WAIT):
            pidfd.send(sup, signal.SIGKILL)
            pidfd.wait(sup, KILL_WAIT)
    finally:
        for fd in (sup, ini):
            if fd is not None:
                os.close(fd)
    _record(spec.name, run, store, read_exit(os.path.join(spec.run_dir, "exit"),
                                            run.get("supervisor_pid")))


def _is_daemon(pid: int) -> bool:
    """Detached supervisors name themselves 'ladle-sup <pot>'; a `ladle run` command does not."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().startswith("ladle-sup")
    except OSError:
        return False


def _record(name: str, run: dict[str, Any], store: Store | None, end: dict[str, Any] | None) -> None:
    """Record the end the supervisor left us, or mark a run still 'running' (its supervisor died
    with it) as 'stopped'."""
    if store is None:
        return
    row = store.get("runs", pot=name)
    if row is None or row["state"] != "running":
        return
    if run.get("supervisor_pid") and row.get("supervisor_pid") != run.get("supervisor_pid"):
        return  # a newer run owns the row
    if end is not None:
        store.put("runs", {"pot": name}, {**row, **end, "pot": name})
    else:
        store.put("runs", {"pot": name}, {**row, "state": "stopped", "finished": time.time()})


def _exec_stop(spec: RuntimeSpec, run: dict[str, Any]) -> None:
    """Run the `exec_stop` attribute inside the pot (FreeBSD's exec.stop), within stop_timeout."""
    command = spec.attrs.get("exec_stop", "").strip()
    if not command:
        return
    from ladle.hosts.linux import container

    entry = container.open_entry(run.get("init_pid"), run.get("init_start"))
    if entry is None:
        return
    log = os.open(spec.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = container.spawn_in(entry, ["/bin/sh", "-c", command], container.pot_env(spec),
                                 mlock=spec.attr_on("mlock"), stdio=(null, log, log))
    except container.SetupError:
        return
    finally:
        entry.close()
        os.close(log)
        os.close(null)
    fd = os.pidfd_open(pid)
    try:
        if not pidfd.wait(fd, spec.stop_timeout):
            pidfd.send(fd, signal.SIGKILL)
        os.waitpid(pid, 0)
    finally:
        os.close(fd)

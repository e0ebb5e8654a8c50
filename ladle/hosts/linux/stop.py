"""Stopping a pot on Linux, including one whose monitor, or whose processes, already died.

The monitor does the stop itself (SIGTERM to the command, SIGKILL to pid 1 after stop_timeout,
which makes the kernel kill everything left in the pid namespace and with the last process the
mount namespace and all the pot's mounts) and records how the run ended. What runs here is the
pot's `exec_stop` first, and the clean-up of a pot no monitor knows any more.
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import TYPE_CHECKING, Any

from ladle import platform
from ladle.errors import HostError
from ladle.supervise import attach

if TYPE_CHECKING:
    from ladle.hosts.base import RuntimeSpec
    from ladle.state.store import Store
    from ladle.supervise.client import MonitorClient

KILL_WAIT = 10.0  # seconds for a SIGKILLed namespace to be torn down


def signal_number(name: str) -> int | None:
    """An image's StopSignal (`SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`) as a number; None: SIGTERM."""
    if not name:
        return None
    if name.isdigit():
        return int(name)
    name = name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()
    for base in ("SIGRTMIN", "SIGRTMAX"):
        if name.startswith(base) and name[len(base):] and name[len(base)] in "+-":
            return int(getattr(signal, base)) + int(name[len(base):])
    sig = getattr(signal.Signals, name, None)
    if sig is None:
        raise HostError(f"unknown stop signal {name[:40]}")
    return int(sig)


def stop(spec: RuntimeSpec, monitor: MonitorClient, store: Store | None) -> None:
    row = store.get("runs", pot=spec.name) if store is not None else None
    if row is not None and row["state"] == "running":
        _exec_stop(spec, monitor)
    reply = monitor.request("stop", pot=spec.name, timeout=spec.stop_timeout, signal=signal_number(spec.stop_signal))
    if reply.get("state") is None and row is not None and row["state"] == "running":
        _kill_leftover(spec.name, row)
        if store is not None:
            store.put("runs", {"pot": spec.name}, {**row, "state": "stopped", "finished": time.time()})


def _exec_stop(spec: RuntimeSpec, monitor: MonitorClient) -> None:
    """The `exec_stop` attribute, inside the pot (FreeBSD's exec.stop), within stop_timeout."""
    command = spec.attrs.get("exec_stop", "").strip()
    if not command:
        return
    from ladle.hosts.linux import container

    log = os.open(spec.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        reply = monitor.request("spawn", fds=[null, log, log], role="exec", pot=spec.name,
                                argv=["/bin/sh", "-c", command], env=container.pot_env(spec),
                                mlock=spec.attr_on("mlock"))
    except HostError:
        return
    finally:
        os.close(log)
        os.close(null)
    deadline = time.monotonic() + spec.stop_timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            event = monitor.wait_event(max(0.0, remaining))
        except TimeoutError:
            monitor.request("signal", pot=spec.name, pid=reply["pid"], signal=int(signal.SIGKILL))
            attach.wait(monitor, {"pot": spec.name, "pid": reply["pid"]})
            return
        if event.get("event") == "exit" and event.get("pid") == reply["pid"]:
            return


def _kill_leftover(name: str, row: dict[str, Any]) -> None:
    """A pot whose run says running but which no monitor adopted: SIGKILL its pid 1, if it is
    still the process the run recorded, and wait for it on a pidfd."""
    pid, start = row.get("init_pid"), row.get("init_start")
    if not pid or not platform.alive(pid, start):
        return
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if platform.alive(pid, start):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            if not select.select([fd], [], [], KILL_WAIT)[0]:
                raise HostError(f"pot {name}: its pid 1 survived SIGKILL for {KILL_WAIT:g}s")
    finally:
        os.close(fd)

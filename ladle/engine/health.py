"""Healthchecks (`set-health`, `healthcheck`): a command run inside a running pot, as an exec.
The monitor runs `ladle healthcheck POT` every interval and records `starting`, `healthy` or
`unhealthy` in the pot's run (supervise.life); this module stores the check and runs it once."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any

from ladle.engine.core import Engine
from ladle.errors import HostError, StateError, UsageError
from ladle.supervise.policy import MAX_DURATION, duration

MAX_RETRIES = 1000
# Docker's defaults for what an image's Healthcheck leaves at 0
IMAGE_DEFAULTS = {"interval": 30.0, "timeout": 30.0, "start_period": 0.0, "retries": 3}


def from_image(hc: dict[str, Any] | None, image: str, shell: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """A pot's check from its image's `Healthcheck` (images.config): CMD runs its argv as is,
    CMD-SHELL under the image's `Shell` or /bin/sh -c (as Docker), NONE means no check; a 0
    takes Docker's default."""
    if not hc or hc["test"][0] == "NONE":
        return None
    check: dict[str, Any] = {}
    for key in ("interval", "timeout", "start_period"):
        seconds = hc[key] / 1e9 or IMAGE_DEFAULTS[key]
        if seconds > MAX_DURATION:
            raise UsageError(f"image {image}: its Healthcheck's {key} is over 24h")
        check[key] = seconds
    if hc["retries"] > MAX_RETRIES:
        raise UsageError(f"image {image}: its Healthcheck's retries are over {MAX_RETRIES}")
    check["retries"] = hc["retries"] or IMAGE_DEFAULTS["retries"]
    if hc["test"][0] == "CMD":
        import shlex
        return {"cmd": shlex.join(hc["test"][1:]), "argv": hc["test"][1:], **check}
    return {"cmd": hc["test"][1], **({"argv": [*shell, hc["test"][1]]} if shell else {}), **check}


def set_health(eng: Engine, name: str, cmd: str | None, interval: str, timeout: str, retries: str,
               start_period: str, remove: bool = False) -> str:
    from ladle.state.steps import put

    if remove:
        if cmd is not None:
            raise UsageError("--remove takes no -c")
        check = None
    else:
        if cmd is None or not cmd.strip():
            raise UsageError("the healthcheck command must not be empty (-c CMD)")
        n = retries.strip()
        if not n.isascii() or not n.isdigit() or not 0 < int(n) <= MAX_RETRIES:
            raise UsageError(f"--retries takes a number from 1 to {MAX_RETRIES}, not {retries!r}")
        check = {"cmd": cmd, "interval": duration("--interval", interval),
                 "timeout": duration("--timeout", timeout), "retries": int(n),
                 "start_period": duration("--start-period", start_period, zero=True)}
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        life = {k: v for k, v in pot["life"].items() if k != "health"} | ({"health": check} if check else {})
        eng.execute("set-health", f"pot:{name}", [put("pots", {"name": name}, {**pot, "life": life}, pot)])
    if check is None:
        return f"pot {name}: healthcheck removed"
    return f"pot {name}: healthcheck set (applied at its next start)"


def healthcheck(eng: Engine, name: str) -> str:
    """Run the pot's check once, in it, as a `bound` exec on a connection of its own: at its
    timeout we hang up on the monitor, which kills it. Raises StateError when it fails."""
    from ladle.engine.lifecycle import running
    from ladle.supervise.client import MonitorClient

    check = eng.pot(name)["life"].get("health")
    if not check:
        raise UsageError(f"pot {name} has no healthcheck (see set-health)")
    s, run = running(eng, name)
    monitor = MonitorClient(eng.root, eng.host.monitor_argv())
    expired = threading.Event()

    def hang_up() -> None:
        expired.set()
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(monitor.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(check["timeout"], hang_up)
    timer.daemon = True
    timer.start()
    try:
        argv = check.get("argv") or ["/bin/sh", "-c", check["cmd"]]
        code = eng.host.exec(s, run, argv, monitor, tty=False, env={}, bound=True)
    except HostError:
        if not expired.is_set():
            raise
        code = None
    finally:
        timer.cancel()
        monitor.close()
    if code == 0 and not expired.is_set():
        return f"pot {name} is healthy"
    why = f"timed out after {check['timeout']:g}s" if expired.is_set() else f"exited with {code}"
    raise StateError(f"pot {name} is unhealthy: its check {why}")

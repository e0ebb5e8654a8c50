"""pot's hooks: host scripts run around a pot's start and stop (`set-hook`), with pot's
variables (`pot info -E`: _POT_NAME, _POT_IP, ...) in their environment. Their output goes to the
command's stderr (a start's or stop's; for the monitor's restarts and teardowns, the monitor's
log). A prestart hook that fails stops the start before anything of it is made; the others'
failures are warnings."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from ladle import _log
from ladle.engine.core import Engine
from ladle.errors import StateError, UsageError

KINDS = ("prestart", "poststart", "prestop", "poststop")
TIMEOUT = 300.0  # seconds a hook may take


def check_path(kind: str, path: str) -> str:
    """A hook's script: an absolute path to an executable regular file ('' removes the hook)."""
    if path == "":
        return path
    if "\n" in path or "\0" in path or not os.path.isabs(path):
        raise UsageError(f"the {kind} hook must be an absolute path, not {path!r}")
    if not os.path.isfile(path):
        raise UsageError(f"the {kind} hook {path} is not a file")
    if not os.access(path, os.X_OK):
        raise UsageError(f"the {kind} hook {path} is not executable")
    return path


def set_hooks(eng: Engine, name: str, paths: dict[str, str | None]) -> str:
    from ladle.state.steps import put

    given = {k: check_path(k, v) for k, v in paths.items() if v is not None}
    if not given:
        raise UsageError("no hook given: -s PRESTART, -S POSTSTART, -t PRESTOP or -T POSTSTOP")
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        hooks = {k: v for k, v in {**pot["life"].get("hooks", {}), **given}.items() if v}
        life = {**pot["life"], "hooks": hooks}
        eng.execute("set-hook", f"pot:{name}", [put("pots", {"name": name}, {**pot, "life": life}, pot)])
    return f"pot {name}: " + ", ".join(f"{k} hook {v or 'removed'}" for k, v in given.items())


def environment(eng: Engine, pot: dict[str, Any], kind: str) -> dict[str, str]:
    """pot's `info -E` variables: _POT_NAME, _POT_IP (the first address) and _POT_IP_LIST, for
    alias pots _POT_IP_<n>, _POT_NIC_<n> and _POT_NIC_LIST, _POT_BRIDGE for a private bridge;
    also _POT_HOOK (which hook) and, while it runs on Linux, _POT_PID1 (its pid 1)."""
    from ladle.engine import netspec, potnet
    from ladle.engine.runs import live_run

    name = pot["name"]
    env = {"_POT_NAME": name, "_POT_HOOK": kind, "_POT_NETWORK_TYPE": pot["network"]}
    aliases = pot["net"].get("aliases", [])
    addresses = [a["address"] for _, a in sorted(netspec.addresses(eng, pot).items())] + [
        a["address"] for a in aliases]
    env["_POT_IP"] = addresses[0] if addresses else ""
    env["_POT_IP_LIST"] = " ".join(addresses)
    for n, a in enumerate(aliases):
        env[f"_POT_IP_{n}"], env[f"_POT_NIC_{n}"] = a["address"], a["interface"]
    if aliases:
        env["_POT_NIC_LIST"] = " ".join(a["interface"] for a in aliases)
    if pot["network"] == "private-bridge":
        env["_POT_BRIDGE"] = str(potnet.network_of(pot))
    run = live_run(eng, name)
    if run is not None and run.init_pid:
        env["_POT_PID1" if eng.host.name == "linux" else "_POT_JID"] = str(run.init_pid)
    return env


def run(eng: Engine, name: str, kind: str) -> None:
    """Run the pot's `kind` hook, if it has one; a failing prestart raises, others warn."""
    pot = eng.pot(name)
    path = pot["life"].get("hooks", {}).get(kind)
    if not path:
        return
    if eng.dry_run:
        eng.lines.append(f"{path}  # the {kind} hook, on the host, with _POT_NAME={name} and pot's other variables")
        return
    env = {**os.environ, **environment(eng, pot, kind)}
    try:
        code = subprocess.run([path], stdin=subprocess.DEVNULL, stdout=2, stderr=2, env=env,
                              timeout=TIMEOUT).returncode
        why = f"exited with code {code}" if code else ""
    except subprocess.TimeoutExpired:
        why = f"took longer than {TIMEOUT:.0f}s"
    except OSError as e:
        why = f"could not run: {e.strerror}"
    if not why:
        return
    if kind == "prestart":
        raise StateError(f"pot {name} not started: its prestart hook {path} {why}")
    _log.warning(f"pot {name}: its {kind} hook {path} {why}")

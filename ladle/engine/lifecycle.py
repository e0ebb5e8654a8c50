"""Start, stop, exec and logs: the engine side of the monitor (DESIGN §5)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ladle import _log, names
from ladle.engine import netspec, potnet, rss
from ladle.engine.core import Engine
from ladle.engine.runs import alive, is_running, live_run, record
from ladle.errors import LadleError, StateError, UsageError
from ladle.hosts.base import OOM, RunRecord, RuntimeSpec
from ladle.storage.snapshotter import Mount

if TYPE_CHECKING:
    from ladle._models import LastRun


def spec(eng: Engine, pot: dict[str, Any]) -> RuntimeSpec:
    name = pot["name"]
    mounts = []
    for m in eng.store.all("pot_mounts", order="seq", pot=name):
        source = eng.snap.path(eng.fscomp(m["source"])["layer"]) if m["kind"] == "fscomp" else m["source"]
        mounts.append(Mount("bind", source, m["mountpoint"], ("ro",) if m["ro"] else ()))
    taken = {m.target.rstrip("/") for m in mounts}
    for volume in (pot.get("image") or {}).get("volumes", []):  # an image's Volumes: see _image
        if volume.rstrip("/") not in taken:
            mounts.append(Mount("tmpfs", "tmpfs", volume, ("nosuid", "nodev", "mode=1777")))
    return RuntimeSpec(
        name=name, hostname=name, root=eng.snap.mounts(pot["layer"]), mounts=mounts, cmd=pot["cmd"],
        env=dict(pot["env"]), attrs=dict(pot["attrs"]), network=pot["network"],
        log_path=os.path.join(eng.root, "logs", f"{name}.log"), run_dir=os.path.join(eng.root, "run", name),
        stack=potnet.stack_of(eng, pot), net=netspec.build(eng, pot), **_image(pot.get("image") or {}),
        extra={"limits": rss.resolve(eng, pot)})


def _image(image: dict[str, Any]) -> dict[str, Any]:
    """The spec fields of a pot made from an image (none for one made from a base).

    Each of the image's Volumes is a fresh tmpfs for each start (unless something is mounted
    there with mount-in or add-fscomp): an anonymous volume whose data lives as long as the
    run, never written into the pot's layer (so never into a commit), and nothing to clean up;
    writable by every user (mode 1777, as /tmp), whatever user the image runs as."""
    if not image:
        return {}
    return {"argv": list(image["argv"]), "user": image.get("user", ""), "workdir": image.get("workdir", ""),
            "stop_signal": image.get("stop_signal", "")}


GRACE = 0.3  # seconds a detached start waits to see whether its command dies at once
LOG_TAIL = 5  # log lines shown when it does


def start(eng: Engine, name: str, remove: bool = False, due: bool = False) -> str:
    """Start a pot detached, after the pots it depends on; `remove` destroys it when its command
    ends (`run --rm -d`); `due` is its restart policy's start (`restart --due`, by the monitor),
    which does nothing if a stop came first.

    A command that fails within GRACE seconds (a daemon whose port is taken) is reported with its
    exit code and the end of its log, and the pot is stopped, instead of saying "started" (unless
    its restart policy takes care of it)."""
    start_deps(eng, name)
    with eng.lock(f"pot-{name}"):
        if due and (eng.store.get("runs", pot=name) or {}).get("state") != "restarting":
            return f"pot {name} is not waiting for a restart (stopped or started since)"
        failed = start_locked(eng, name, remove, due)
    if failed:
        _torn_down(eng, name)  # a non-persistent one: the monitor's own stop, which needed our lock
        raise StateError(failed)
    return f"started pot {name}"


def start_deps(eng: Engine, name: str) -> None:
    """Start what the pot depends on (add-dep), dependencies first, and wait until each runs,
    and is healthy if it has a healthcheck."""
    from ladle.engine import deps

    eng.pot(name)
    for dep in deps.order(eng, [name])[:-1]:
        with eng.lock(f"pot-{dep}"):
            if not is_running(eng, dep) and start_locked(eng, dep):
                raise StateError(f"pot {name} not started: its dependency {dep} did not start")
        deps.wait_ready(eng, dep)


def start_locked(eng: Engine, name: str, remove: bool = False, due: bool = False) -> str | None:
    """`start` of a pot whose lock we hold (rollback -F restarts the pots it stopped); why it
    failed if its command died at once (a persistent pot is stopped again). A start by hand
    (not `due`) ends a restart its policy had pending, so its restarts count from 0 again."""
    from ladle.engine import hooks

    pot = startable(eng, name)
    if not due:
        _cancel_restart(eng, name)
    hooks.run(eng, name, "prestart")
    s = spec(eng, pot)
    s.extra["remove"] = remove
    eng.execute("start", f"pot:{name}", eng.host.start_plan(s))
    if "hosts" in s.net:
        write_hosts(eng, name, s.net["hosts"])  # a pot on its network came or went since its spec was built
    policy = pot["attrs"].get("restart", "no")
    failed = None if eng.dry_run or policy != "no" else _died_at_once(eng, name, s.log_path)
    if failed and pot["attrs"].get("persistent") == "YES":
        stop_locked(eng, name)
    if not failed:
        hooks.run(eng, name, "poststart")
    return failed


def _cancel_restart(eng: Engine, name: str) -> bool:
    """A restart its policy had pending is off (a stop is final; a start by hand counts anew)."""
    from ladle.state.steps import put

    row = eng.store.get("runs", pot=name)
    if not row or row["state"] != "restarting" or eng.dry_run:
        return False
    eng.execute("stop", f"pot:{name}", [put("runs", {"pot": name}, {**row, "state": "stopped", "restart_at": None},
                                             row)], on_crash="finish")
    return True


def write_hosts(eng: Engine, name: str, known: str | None = None) -> None:
    """Write the running pot's /etc/hosts from the state (see engine/hostsfile), unless it is
    `known` (what its start wrote). A failure is only warned about, and not even that once the
    pot has stopped: the change that asked for it is made."""
    if eng.dry_run and known is not None:
        return
    try:
        with eng.lock(f"hosts-{name}"):
            run = live_run(eng, name)
            if run is None:
                return
            s = spec(eng, eng.pot(name))
            if s.net.get("hosts") is None or s.net.get("hosts") == known:
                return
            steps = eng.host.hosts_plan(s, run)
            if steps:
                eng.execute("hosts", f"pot:{name}", steps, on_crash="finish")
    except LadleError as e:
        if live_run(eng, name) is not None:
            _log.warning(f"pot {name}: /etc/hosts not updated: {e}")


def _died_at_once(eng: Engine, name: str, log_path: str) -> str | None:
    """Why the start failed, if the pot's command ended with a failure within GRACE seconds."""
    deadline = time.monotonic() + GRACE
    code = None
    while code is None and time.monotonic() < deadline:
        time.sleep(0.02)
        code = (eng.store.get("runs", pot=name) or {}).get("exit_code")
    if not code:
        return None
    tail = _log_tail(log_path)
    if code == 137 and _oom_killed(eng, name):
        memory = eng.pot(name)["attrs"].get("rss.memory")
        limit = f" (its limit is {int(memory) / (1 << 20):.4g} MiB)" if memory else ""
        return (f"pot {name} did not start: it was killed for memory{limit}: the kernel's OOM killer ended its"
                " command (exit code 137)" + ("; the end of its log:\n" + tail if tail else ""))
    return (f"pot {name} did not start: its command exited with code {code}"
            + ("; the end of its log:\n" + tail if tail else " (its log is empty)"))


def _oom_killed(eng: Engine, name: str) -> bool:
    """Whether the kernel's OOM killer ended the pot's command: its cgroup's counter while the
    cgroup is there, else what the monitor's stop read from it before removing it (the run's
    error, waited for until the teardown is done)."""
    kills = eng.host.oom_kills(name)
    if kills is not None:
        return kills > 0
    _torn_down(eng, name, timeout=5.0)
    return ((eng.store.get("runs", pot=name) or {}).get("error") or "").startswith(OOM)


def _torn_down(eng: Engine, name: str, timeout: float = 10.0) -> None:
    """Wait (bounded) until the monitor has stopped a non-persistent pot, so that `ls` agrees."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = eng.store.get("runs", pot=name)
        if run is None or run.get("state") != "running":
            return
        time.sleep(0.02)


def _log_tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(f"  {line}" for line in lines[-LOG_TAIL:])


def startable(eng: Engine, name: str) -> dict[str, Any]:
    """The pot's row, if it may start now (its lock held): not running, and whatever a crashed
    run left of it torn down."""
    pot = eng.pot(name)
    if is_running(eng, name):
        raise StateError(f"pot {name} is already running")
    _clean_stale(eng, name)
    return pot


def _clean_stale(eng: Engine, name: str) -> None:
    """A run record left by a crash, or processes no run recorded: tear down whatever is left of
    the pot before starting it again."""
    run = record(eng.store.get("runs", pot=name))
    if run and run.state == "running" and not eng.dry_run:
        eng.execute("stop", f"pot:{name}", eng.host.stop_plan(spec(eng, eng.pot(name)), run), on_crash="finish")
    leftover = eng.host.leftover_plan(name)  # processes of it that no run recorded
    if leftover and not eng.dry_run:
        eng.execute("stop", f"pot:{name}", leftover, on_crash="finish")


def stop(eng: Engine, name: str, exited: bool = False) -> str:
    """Stop a pot; stopping one that is not running is not an error (as in pot), but is said.
    A stop is final: a restart its policy had pending is cancelled, unless this is the
    monitor's teardown of a pot that ended by itself (`exited`). Running pots that depend on it
    are warned about."""
    return stop_telling(eng, name, exited)[0]


def stop_telling(eng: Engine, name: str, exited: bool = False) -> tuple[str, bool]:
    """`stop`, and whether the pot it stopped runs from `run --rm -d` (its monitor would have
    destroyed it, not stopped it, had its command ended by itself)."""
    from ladle.engine import deps

    if not exited:
        up = [d for d in deps.dependants(eng, name) if is_running(eng, d)]
        if up:
            _log.warning(f"pot {name} is a dependency of running pots: {', '.join(up)}")
    with eng.lock(f"pot-{name}"):
        eng.pot(name)
        removed = _started_to_be_removed(eng, name)
        stopped = stop_locked(eng, name)
        cancelled = not exited and _cancel_restart(eng, name)
        if not stopped:
            if cancelled:
                return f"pot {name} was waiting for a restart: cancelled", False
            if not exited:
                _log.warning(f"pot {name} is not running")
            return f"pot {name} was not running", False
    return f"stopped pot {name}", removed


def _started_to_be_removed(eng: Engine, name: str) -> bool:
    import json

    from ladle.supervise.records import destroys
    row = eng.store.get("runs", pot=name)
    return bool(row and row["state"] == "running" and destroys(json.loads(row.get("on_exit") or "null")))


def stop_locked(eng: Engine, name: str) -> bool:
    """Stop a pot whose lock we hold, with its prestop and poststop hooks; False if it was not
    running."""
    from ladle.engine import hooks

    run = record(eng.store.get("runs", pot=name))
    if run is None or run.state != "running":
        return False
    was_alive = alive(eng, run)
    if was_alive:
        hooks.run(eng, name, "prestop")
    eng.execute("stop", f"pot:{name}", eng.host.stop_plan(spec(eng, eng.pot(name)), run), on_crash="finish")
    if was_alive:
        hooks.run(eng, name, "poststop")
    return was_alive


def restart(eng: Engine, name: str, due: bool = False) -> str:
    """Stop (if it runs) and start again, by hand: its restart count starts over. `due`: the
    monitor's start of a pot its restart policy restarts (nothing if a stop came first)."""
    if not due and is_running(eng, name):
        stop(eng, name)
    return start(eng, name, due=due).replace("started pot", "restarted pot")


def running(eng: Engine, name: str) -> tuple[RuntimeSpec, RunRecord]:
    pot = eng.pot(name)
    run = live_run(eng, name)
    if run is None:
        raise StateError(f"pot {name} is not running")
    return spec(eng, pot), run


def exec_env(env: dict[str, str] | None) -> dict[str, str]:
    out = {}
    for key, value in (env or {}).items():
        names.env_pair(f"{key}=")
        out[key] = value
    return out


def exec_(eng: Engine, name: str, argv: list[str], tty: bool, env: dict[str, str] | None) -> int:
    if not argv:
        raise UsageError("no command given: ladle exec NAME -- COMMAND [ARG...]")
    s, run = running(eng, name)
    code = eng.host.exec(s, run, argv, eng.monitor(), tty=tty, env=exec_env(env))
    return 255 if code is None else code


def exec_plan(eng: Engine, name: str, argv: list[str], tty: bool) -> list[str]:
    """What `exec` would run, for --dry-run (the pot need not run)."""
    if not argv:
        raise UsageError("no command given: ladle exec NAME -- COMMAND [ARG...]")
    s = spec(eng, eng.pot(name))
    run = record(eng.store.get("runs", pot=name))
    if run and run.state == "running":
        s.extra["init_pid"] = run.init_pid
    return eng.host.exec_render(s, argv, tty=tty)


def logs(eng: Engine, name: str, follow: bool) -> Iterator[bytes]:
    """The pot's log in chunks; with `follow`, also what is appended until the pot stops."""
    eng.pot(name)
    path = os.path.join(eng.root, "logs", f"{name}.log")
    if follow:
        from ladle.supervise.logs import follow as follow_log
        yield from follow_log(path, lambda: is_running(eng, name))
        return
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 16):
                yield chunk
    except FileNotFoundError:
        return


def last_run(eng: Engine, name: str) -> LastRun:
    from ladle._models import LastRun

    eng.pot(name)
    row = eng.store.get("runs", pot=name) or {}
    return LastRun(exit_code=row.get("exit_code"), state=str(row.get("state", "none")),
                   started=row.get("started"), finished=row.get("finished"))


def signal_(eng: Engine, name: str, sig: str) -> str:
    """pot's `signal`: send a signal to the pot's command (its main process)."""
    number = signal_number(sig)
    running(eng, name)
    eng.monitor().request("signal", pot=name, signal=number)
    return f"sent SIG{signal_name(number)} to the command of pot {name}"


def wait(eng: Engine, name: str) -> int | None:
    """Block until the pot's command exits (at once if it has); its exit code."""
    eng.pot(name)
    if live_run(eng, name) is not None:
        eng.monitor().request("wait", pot=name)
    row = eng.store.get("runs", pot=name) or {}
    code = row.get("exit_code")
    return None if code is None else int(code)


def signal_number(sig: str) -> int:
    """A signal by name (`HUP`, `SIGHUP`, any case) or number, as this host numbers them."""
    import signal

    text = sig.strip().upper()
    if text.isascii() and text.isdigit():  # '²' is a digit to Python, and int() refuses it
        number = int(text)
        if number not in {int(s) for s in signal.valid_signals()}:
            raise UsageError(f"no signal number {number} on this host")
        return number
    found = getattr(signal, text if text.startswith("SIG") else f"SIG{text}", None)
    if not isinstance(found, signal.Signals):
        raise UsageError(f"unknown signal {sig!r} (e.g. HUP, TERM, USR1, or a number)")
    return int(found)


def signal_name(number: int) -> str:
    import signal

    return signal.Signals(number).name.removeprefix("SIG")

"""Start, stop, exec and logs: the engine side of the monitor (DESIGN §5)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from ladle import names
from ladle._models import LastRun
from ladle.engine.core import Engine
from ladle.errors import StateError, UsageError
from ladle.hosts.base import RunRecord, RuntimeSpec
from ladle.storage.snapshotter import Mount

log = logging.getLogger("ladle")


def record(row: dict[str, Any] | None) -> RunRecord | None:
    if not row:
        return None
    fields = RunRecord.__dataclass_fields__
    return RunRecord(**{k: v for k, v in row.items() if k in fields})


def _status(run: RunRecord | None, alive: bool) -> str:
    """'running', 'stopped', 'exited (N)', 'failed', or 'crashed' when the record says running but
    nothing of the pot is left."""
    if run is None:
        return "stopped"
    if run.state == "running":
        return "running" if alive else "crashed"
    if run.state == "exited":
        return f"exited ({'?' if run.exit_code is None else run.exit_code})"
    return run.state


def status(eng: Engine, row: dict[str, Any] | None) -> str:
    return statuses(eng, [row])[0]


def statuses(eng: Engine, rows: Sequence[dict[str, Any] | None]) -> list[str]:
    """The status of many pots, asking the host once (`jls` once on FreeBSD, not once a pot)."""
    runs = [record(r) for r in rows]
    live = [r for r in runs if r is not None and r.state == "running"]
    alive = dict(zip((id(r) for r in live), alive_all(eng, live), strict=True))
    return [_status(r, alive.get(id(r), False)) for r in runs]


def alive_all(eng: Engine, runs: list[RunRecord]) -> list[bool]:
    """Which of these runs (recorded running) still have their pot. A dry run for another host
    has no host to ask, and runs no command: it trusts the records."""
    if eng.offline or not runs:
        return [True] * len(runs)
    return eng.host.alive_all(runs)


def alive(eng: Engine, run: RunRecord) -> bool:
    """`alive_all` for one run (the host may ask about one pot more cheaply)."""
    return eng.offline or eng.host.alive(run)


def live_run(eng: Engine, name: str) -> RunRecord | None:
    """The run record of a pot that is running now, or None."""
    run = record(eng.store.get("runs", pot=name))
    return run if run is not None and run.state == "running" and alive(eng, run) else None


def is_running(eng: Engine, name: str) -> bool:
    return live_run(eng, name) is not None


def spec(eng: Engine, pot: dict[str, Any]) -> RuntimeSpec:
    name = pot["name"]
    mounts = []
    for m in eng.store.all("pot_mounts", order="seq", pot=name):
        source = eng.snap.path(eng.fscomp(m["source"])["layer"]) if m["kind"] == "fscomp" else m["source"]
        mounts.append(Mount("bind", source, m["mountpoint"], ("ro",) if m["ro"] else ()))
    return RuntimeSpec(
        name=name, hostname=name, root=eng.snap.mounts(pot["layer"]), mounts=mounts, cmd=pot["cmd"],
        env=dict(pot["env"]), attrs=dict(pot["attrs"]), network=pot["network"],
        log_path=os.path.join(eng.root, "logs", f"{name}.log"), run_dir=os.path.join(eng.root, "run", name),
        stack=eng.cfg.stack)


def start(eng: Engine, name: str) -> str:
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        if is_running(eng, name):
            raise StateError(f"pot {name} is already running")
        _clean_stale(eng, name)
        eng.execute("start", f"pot:{name}", eng.host.start_plan(spec(eng, pot)))
    return f"started pot {name}"


def _clean_stale(eng: Engine, name: str) -> None:
    """A run record left by a crash: tear down whatever is left of it before starting again."""
    run = record(eng.store.get("runs", pot=name))
    if run and run.state == "running" and not eng.dry_run:
        eng.execute("stop", f"pot:{name}", eng.host.stop_plan(spec(eng, eng.pot(name)), run), on_crash="finish")


def stop(eng: Engine, name: str) -> str:
    """Stop a pot; stopping one that is not running is not an error (as in pot), but is said."""
    with eng.lock(f"pot-{name}"):
        eng.pot(name)
        if not stop_locked(eng, name):
            log.warning("pot %s is not running", name)
            return f"pot {name} was not running"
    return f"stopped pot {name}"


def stop_locked(eng: Engine, name: str) -> bool:
    """Stop a pot whose lock we hold; False if it was not running."""
    run = record(eng.store.get("runs", pot=name))
    if run is None or run.state != "running":
        return False
    was_alive = alive(eng, run)
    eng.execute("stop", f"pot:{name}", eng.host.stop_plan(spec(eng, eng.pot(name)), run), on_crash="finish")
    return was_alive


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
    eng.pot(name)
    row = eng.store.get("runs", pot=name) or {}
    return LastRun(exit_code=row.get("exit_code"), state=str(row.get("state", "none")),
                   started=row.get("started"), finished=row.get("finished"))

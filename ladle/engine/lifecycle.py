"""Start, stop, exec, logs and run: the engine side of the supervisor (DESIGN §5)."""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

from ladle import names
from ladle.engine import pots
from ladle.engine.core import Engine
from ladle.errors import NotFound, StateError, UsageError
from ladle.hosts.base import RunRecord, RuntimeSpec
from ladle.storage.snapshotter import Mount


def record(row: dict[str, Any] | None) -> RunRecord | None:
    if not row:
        return None
    fields = RunRecord.__dataclass_fields__
    return RunRecord(**{k: v for k, v in row.items() if k in fields})


def status(eng: Engine, row: dict[str, Any] | None) -> str:
    """'running', 'stopped', 'exited (N)', or 'crashed' when the record says running but it is gone."""
    run = record(row)
    if run is None:
        return "stopped"
    if run.state == "running":
        return "running" if eng.host.alive(run) else "crashed"
    if run.state == "exited":
        return f"exited ({run.exit_code})"
    return run.state


def live_run(eng: Engine, name: str) -> RunRecord | None:
    """The run record of a pot that is running now, or None."""
    run = record(eng.store.get("runs", pot=name))
    return run if run is not None and run.state == "running" and eng.host.alive(run) else None


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
        log_path=os.path.join(eng.root, "logs", f"{name}.log"), run_dir=os.path.join(eng.root, "run", name))


def start(eng: Engine, name: str) -> None:
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        if is_running(eng, name):
            raise StateError(f"pot {name} is already running")
        _clean_stale(eng, name)
        eng.execute("start", f"pot:{name}", eng.host.start_plan(spec(eng, pot)))
    eng.say(f"started pot {name}")


def _clean_stale(eng: Engine, name: str) -> None:
    """A run record left by a crash: tear down whatever is left of it before starting again."""
    run = record(eng.store.get("runs", pot=name))
    if run and run.state == "running" and not eng.dry_run:
        eng.execute("stop", f"pot:{name}", eng.host.stop_plan(spec(eng, eng.pot(name)), run), on_crash="finish")


def stop(eng: Engine, name: str) -> None:
    with eng.lock(f"pot-{name}"):
        eng.pot(name)
        if not stop_locked(eng, name):
            print(f"ladle: pot {name} is not running", file=sys.stderr)
            return
    eng.say(f"stopped pot {name}")


def stop_locked(eng: Engine, name: str) -> bool:
    """Stop a pot whose lock we hold; False if it was not running."""
    run = record(eng.store.get("runs", pot=name))
    if run is None or run.state != "running":
        return False
    was_alive = eng.host.alive(run)
    eng.execute("stop", f"pot:{name}", eng.host.stop_plan(spec(eng, eng.pot(name)), run), on_crash="finish")
    return was_alive


def running(eng: Engine, name: str) -> tuple[RuntimeSpec, RunRecord]:
    pot = eng.pot(name)
    run = live_run(eng, name)
    if run is None:
        raise StateError(f"pot {name} is not running")
    return spec(eng, pot), run


def exec_(eng: Engine, name: str, argv: list[str], tty: bool, env: list[str]) -> int:
    if not argv:
        raise UsageError("no command given: ladle exec NAME -- COMMAND [ARG...]")
    extra = dict(names.env_pair(e) for e in env)
    pot = eng.pot(name)
    if eng.dry_run:
        s = spec(eng, pot)
        run = record(eng.store.get("runs", pot=name))
        if run and run.state == "running":
            s.extra["init_pid"] = run.init_pid
        for line in eng.host.exec_render(s, argv, tty=tty):
            print(line, file=eng.out)
        return 0
    s, run = running(eng, name)
    return eng.host.exec(s, run, argv, tty=tty, env=extra)


def logs(eng: Engine, name: str, follow: bool) -> None:
    eng.pot(name)
    path = os.path.join(eng.root, "logs", f"{name}.log")
    if not os.path.exists(path):
        return
    if follow:
        from ladle.supervise.logs import follow as follow_log
        follow_log(path, lambda: is_running(eng, name), sys.stdout.buffer)
        return
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


def set_attr(eng: Engine, name: str, attr: str, value: str) -> None:
    changes = eng.host.expand_attr(attr, value)
    pot = eng.pot(name)
    pots.update(eng, name, "set-attr", attrs={**pot["attrs"], **changes})


def get_attr(eng: Engine, name: str, attr: str) -> str:
    attrs = eng.pot(name)["attrs"]
    if attr not in attrs:
        raise NotFound(f"pot {name} has no attribute {attr}")
    return str(attrs[attr])


def run(eng: Engine, base: str, argv: list[str], name: str | None, remove: bool, detach: bool,
        network: str) -> int:
    """Docker's `run`: create a non-persistent pot and run it attached; return the command's code."""
    if not argv:
        raise UsageError("no command given: ladle run BASE -- COMMAND [ARG...]")
    name = name or f"run-{os.urandom(5).hex()}"
    pots.create(eng, name, base, "multi", 1, None, shlex.join(argv), network,
                attrs={"persistent": "NO"}, quiet=True)
    if eng.dry_run:
        print(f"# then start pot {name} attached to this terminal" + (" and destroy it" if remove else ""),
              file=eng.out)
        return 0
    if detach:
        start(eng, name)
        return 0
    try:
        with eng.lock(f"pot-{name}"):
            s = spec(eng, eng.pot(name))
        return eng.host.run_foreground(s, log=not remove)
    finally:
        if remove:
            pots.destroy(eng, name, recursive=False, force=True, quiet=True)

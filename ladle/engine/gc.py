"""Crash recovery: finish or roll back interrupted operations and remove what leaked (DESIGN §2).

`recover` is cheap (one indexed query when nothing crashed) and runs before every command that
changes something, so a crash is repaired by the next command; `ladle gc` does that and more.
"""

from __future__ import annotations

import os
import sys

from ladle.engine import lifecycle
from ladle.engine.core import Engine
from ladle.errors import Busy
from ladle.hosts.base import RunRecord
from ladle.plan.executor import finish, undo
from ladle.plan.steps import Step
from ladle.state import locks


def recover(eng: Engine) -> list[str]:
    """Finish or undo operations whose process died; returns one line per repaired operation."""
    if eng.dry_run or not eng.store.db.execute("SELECT 1 FROM ops WHERE state='running' LIMIT 1").fetchone():
        return []
    done = []
    for op in eng.store.stale_ops():
        kind, _, name = op["subject"].partition(":")
        try:
            with locks.hold(eng.root, f"{kind}-{name}" if name else kind, timeout=0):
                if not any(o["id"] == op["id"] for o in eng.store.stale_ops()):
                    continue
                done.append(_repair(eng, op))
        except Busy:
            continue
    return done


def _repair(eng: Engine, op: dict[str, object]) -> str:
    rows = eng.store.op_steps(int(str(op["id"])))
    steps = [Step.from_json(r["step"]) for r in rows]
    ran = [s for s, r in zip(steps, rows, strict=True) if r["state"] in ("started", "done")]
    if op["on_crash"] == "finish":
        todo = [s for s, r in zip(steps, rows, strict=True) if r["state"] in ("started", "pending")]
        problems = finish(eng.ctx, todo)
        verb = "finished"
    else:
        problems = undo(eng.ctx, ran)
        verb = "rolled back"
    for p in problems:
        print(f"ladle: warning: {p}", file=sys.stderr)
    eng.store.op_end(int(str(op["id"])), "done")
    return f"{verb} interrupted {op['verb']} of {op['subject']}"


def gc(eng: Engine) -> list[str]:
    """Everything `recover` does, plus: stop crashed pots, unmount leaked mounts, drop orphans."""
    report = recover(eng)
    for row in eng.store.all("runs", state="running"):
        run = lifecycle.record(row)
        if run is None or (eng.host.alive(run) and _supervised(run)):
            continue
        with eng.lock(f"pot-{row['pot']}"):
            pot = eng.store.get("pots", name=row["pot"])
            if pot is None:
                continue
            lifecycle.stop_locked(eng, row["pot"])
            report.append(f"cleaned up after crashed pot {row['pot']}")
    report += _leaked_mounts(eng)
    report += _orphans(eng)
    return report


_LOCK = {"bases": "base", "pots": "pot", "fscomps": "fscomp"}


def _orphans(eng: Engine) -> list[str]:
    """Layers on storage that no state row knows of (e.g. the database was restored from a backup).
    Each is removed under its object's lock, so a command creating it right now is left alone."""
    out = []
    for key in eng.snap.orphans():
        category, name = key.split("/", 1)
        try:
            with locks.hold(eng.root, f"{_LOCK[category]}-{name}", timeout=0):
                if not eng.store.get("layers", key=key):  # still unknown now that we hold its lock
                    eng.execute("gc", f"{_LOCK[category]}:{name}", eng.snap.remove_orphan(key), on_crash="finish")
                    out.append(f"removed orphaned storage {key}")
        except Busy:
            continue
    return out


def _supervised(run: RunRecord) -> bool:
    from ladle import proc
    return run.supervisor_pid is None or proc.alive(run.supervisor_pid, run.supervisor_start)


def _leaked_mounts(eng: Engine) -> list[str]:
    """Mounts under the state root on the host; pots mount inside their own namespace, so any
    mount seen here was left by a crash in the middle of a host-side mount."""
    if not os.path.exists("/proc/self/mounts"):
        return []
    prefix = os.path.join(eng.root, "run") + "/"
    with open("/proc/self/mounts") as f:
        targets = [line.split()[1].replace("\\040", " ") for line in f]
    out = []
    for target in sorted((t for t in targets if t.startswith(prefix)), key=len, reverse=True):
        eng.runner.run(["umount", "-l", target], check=False)
        out.append(f"unmounted leaked {target}")
    return out

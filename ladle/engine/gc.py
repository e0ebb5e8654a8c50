"""Crash recovery: finish or roll back interrupted operations and remove what leaked (DESIGN §2).

`recover` is cheap (one indexed query when nothing crashed) and runs before every command that
changes something, so a crash is repaired by the next command; `ladle gc` does that and more.
"""

from __future__ import annotations

from typing import Any

from ladle import _log
from ladle.engine import buildwork, changes, lifecycle, runs
from ladle.engine.core import Engine
from ladle.errors import Busy, LadleError
from ladle.hosts.base import RunRecord
from ladle.plan.executor import committed, finish, reason, undo
from ladle.plan.steps import Step, UnknownStep
from ladle.state import locks


def recover(eng: Engine) -> list[str]:
    """Finish or undo operations whose process died; returns one line per repaired operation.

    A repair that fails marks its operation 'failed' with a one-line reason and goes on: one
    broken operation never blocks the commands that follow (`ladle gc` lists it, `--force`
    drops it)."""
    if eng.dry_run or not eng.store.db.execute("SELECT 1 FROM ops WHERE state='running' LIMIT 1").fetchone():
        return []
    done = []
    for op in eng.store.stale_ops():
        try:
            with locks.hold(eng.root, locks.subject_lock(op["subject"]), timeout=0):
                if not any(o["id"] == op["id"] for o in eng.store.stale_ops()):
                    continue
                done.append(_repair(eng, op))
        except Busy:
            continue
        except Exception as e:  # whatever broke, the operation must stop being 'running'
            done.append(_failed(eng, op, reason(e)))
    return done


def _failed(eng: Engine, op: dict[str, Any], why: str) -> str:
    eng.store.op_end(int(op["id"]), "failed", why)
    return f"could not repair interrupted {op['verb']} of {op['subject']}: {why}"


def _repair(eng: Engine, op: dict[str, Any]) -> str:
    """Finish or undo one operation: finish it if it is past its Commit (or its plan says so),
    else undo what ran. One whose steps this ladle cannot rebuild, or whose repair fails, is set
    aside as 'failed' with a one-line reason."""
    rows = eng.store.op_steps(int(op["id"]))
    try:
        steps = [Step.from_json(r["step"]) for r in rows]
    except UnknownStep as e:
        return _failed(eng, op, str(e))
    states = [str(r["state"]) for r in rows]
    if op["on_crash"] == "finish" or committed(steps, states):
        problems = finish(eng.ctx, [s for s, st in zip(steps, states, strict=True) if st != "done"])
        verb = "finished"
    else:
        problems = undo(eng.ctx, [s for s, st in zip(steps, states, strict=True) if st != "pending"])
        verb = "rolled back"
    if problems:
        for p in problems[1:]:
            _log.warning(p)
        return _failed(eng, op, problems[0])
    eng.store.op_end(int(op["id"]), "done")
    return f"{verb} interrupted {op['verb']} of {op['subject']}"


def failed(eng: Engine, force: bool) -> list[str]:
    """Operations whose repair failed: listed, or with `force` forgotten."""
    rows = eng.store.all("ops", order="id", state="failed")
    if force:
        for r in rows:
            eng.store.drop_op(int(r["id"]))
        return [f"dropped failed {r['verb']} of {r['subject']}" for r in rows]
    return [f"failed {r['verb']} of {r['subject']}: {r['error']} (`ladle gc --force` drops it)" for r in rows]


def gc(eng: Engine, force: bool = False) -> list[str]:
    """Everything `recover` does, plus: tear down crashed pots, make sure the monitor owns every
    live one, unmount leaked mounts, remove the views crashed commits left and storage no state
    knows of.

    A pot whose processes are alive is never stopped here, whatever happened to its monitor: the
    monitor (started if need be) adopts it, and gc says so."""
    report = recover(eng)
    report += failed(eng, force)
    if not eng.dry_run:
        report += buildwork.sweep(eng)
    rows = eng.store.all("runs", state="running")
    recorded = [r for r in (runs.record(row) for row in rows) if r is not None]
    alive = runs.alive_all(eng, recorded)
    for run, ok in zip(recorded, alive, strict=True):
        if ok:
            continue
        with eng.lock(f"pot-{run.pot}"):
            if eng.store.get("pots", name=run.pot) is not None:
                lifecycle.stop_locked(eng, run.pot)
                report.append(f"cleaned up after crashed pot {run.pot}")
    live = [r for r, ok in zip(recorded, alive, strict=True) if ok]
    if live and not eng.dry_run:  # a dry run starts no monitor
        live, lines = _adopted(eng, live)
        report += lines
    report += _leftovers(eng, {r.pot for r in live})
    report += _leaked_mounts(eng, {r.pot for r in live})
    report += changes.sweep(eng)
    report += _orphans(eng)
    if not eng.dry_run:
        report += _store_leftovers(eng)
    return report


def _store_leftovers(eng: Engine) -> list[str]:
    """What crashed writers left in the image store (a blob half-written, the temporary tar of a
    layer being stored), if no one is using the store right now (a pull or a build holds it shared)."""
    from ladle.engine import images
    blobs = images._blobs(eng)
    try:
        with blobs.lock(shared=False, timeout=0):
            gone = images.leftovers(eng, blobs)
    except Busy:
        return []
    return [f"removed {gone} temporary file{'s' if gone != 1 else ''} of interrupted image writes"] if gone else []


def _adopted(eng: Engine, live: list[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """Make sure the monitor owns every live pot (it adopts them when it starts); one it could not
    adopt (its log or FIFOs are gone) is stopped, so that nothing of it runs unseen."""
    client = eng.monitor()
    monitor = client.request("hello")["pid"]  # answered once it has adopted what it could
    owned = set(client.request("status")["pots"])
    report = []
    for run in [r for r in live if r.pot not in owned]:
        with eng.lock(f"pot-{run.pot}"):
            if lifecycle.stop_locked(eng, run.pot):
                report.append(f"pot {run.pot} was running but its monitor could not adopt it: stopped it")
    live = [r for r in live if r.pot in owned]
    report += [f"pot {r.pot} is running; its monitor {r.monitor_pid} had died, monitor {monitor} adopted it"
               for r in live if r.monitor_pid != monitor]
    return live, report


def _leftovers(eng: Engine, live: set[str]) -> list[str]:
    """Processes the host tracks for a pot that no run says is running (Linux: the pot's cgroup),
    left by a crash that lost the record of them (`start` and its monitor killed together): they
    are ended and the tracking removed, under the pot's lock, so a start right now is left alone."""
    out = []
    for name, populated in eng.host.leftovers().items():
        if name in live:
            continue
        try:
            with locks.hold(eng.root, locks.subject_lock(f"pot:{name}"), timeout=0):
                if runs.live_run(eng, name) is not None:
                    continue
                steps = eng.host.leftover_plan(name)
                if steps:
                    eng.execute("gc", f"pot:{name}", steps, on_crash="finish")
                    out.append(f"ended the leftover processes of pot {name}" if populated
                               else f"removed the empty cgroup of pot {name}")
        except Busy:
            continue
    return out


_KIND = {"bases": "base", "pots": "pot", "fscomps": "fscomp", "layers": "layer", "views": "view"}


def _orphans(eng: Engine) -> list[str]:
    """Layers on storage that no state row knows of (e.g. the database was restored from a backup).
    Each is removed under its object's lock, so a command creating it right now is left alone."""
    out = []
    for key in eng.snap.orphans():
        category, name = key.split("/", 1)
        try:
            subject = f"{_KIND[category]}:{name}"
            with locks.hold(eng.root, locks.subject_lock(subject), timeout=0):
                if not eng.snap.exists(key):  # still unknown now that we hold its lock
                    eng.execute("gc", subject, eng.snap.remove_orphan(key), on_crash="finish")
                    out.append(f"removed orphaned storage {key}")
        except Busy:
            continue
    return out


def _leaked_mounts(eng: Engine, live: set[str]) -> list[str]:
    """Mounts under the state root left by a crash (not those of a pot that runs), innermost first."""
    out = []
    for point in sorted(eng.host.leaked_mounts(live), key=len, reverse=True):
        try:
            eng.execute("gc", "global", eng.host.force_unmount(point), on_crash="finish")
        except LadleError as e:
            _log.warning(f"could not unmount leaked {point}: {e}")
            continue
        out.append(f"unmounted leaked {point}")
    return out

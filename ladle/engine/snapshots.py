"""Snapshots of pots and fscomps: snapshot, rollback, promote, purge (pot §4.6)."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext

from ladle import names
from ladle.engine import lifecycle, runs
from ladle.engine.core import Engine
from ladle.errors import LadleError, NotFound, StateError, UsageError
from ladle.plan.steps import Step
from ladle.state import locks


def snapshot_name(eng: Engine, key: str) -> str:
    """pot's convention: a snapshot is named by its Unix time; bumped if taken twice a second."""
    stamp = int(time.time())
    taken = set(eng.snap.snapshots(key))
    while str(stamp) in taken:
        stamp += 1
    return str(stamp)


def _target(eng: Engine, pot: str | None, fscomp: str | None) -> tuple[str, str, str]:
    """(lock name, layer key, label) for `-p POT` or `-f FSCOMP` (exactly one). A multi level 0
    pot's tree is its base's (pot patches a base through one): its snapshots are the base's, so
    a snapshot of it is what pots created afterwards start from."""
    if bool(pot) == bool(fscomp):
        raise UsageError("give exactly one of -p POT or -f FSCOMP")
    if pot:
        row = eng.pot(pot)
        if row["layer"] != f"pots/{pot}":
            return f"base-{row['base']}", row["layer"], f"base {row['base']} (the tree of level 0 pot {pot})"
        return f"pot-{pot}", row["layer"], f"pot {pot}"
    row = eng.fscomp(fscomp or "")
    return f"fscomp-{fscomp}", row["layer"], f"fscomp {fscomp}"


def _subject(lock: str) -> str:
    """The intent log's subject for a lock name ('pot-web' -> 'pot:web'): recovery takes the same lock."""
    return locks.lock_subject(lock)


def _users(eng: Engine, key: str, fscomp: str | None) -> list[str]:
    """Running pots that use the layer: those whose tree it is (a pot, or the level 0 pots of a
    base), or that mount the fscomp."""
    rows = (eng.store.all("pot_mounts", order="pot", kind="fscomp", source=fscomp) if fscomp
            else eng.store.all("pots", order="name", layer=key))
    names_ = sorted({r["pot"] if fscomp else r["name"] for r in rows})
    return [n for n in names_ if runs.is_running(eng, n)]


def _in_use(label: str, users: list[str]) -> str:
    if label in (f"pot {u}" for u in users):
        return f"{label} is running"
    return f"{label} is in use by running pot(s) {', '.join(users)}"


def _stopped(eng: Engine, key: str, label: str) -> None:
    """pot snapshots a pot only while it is stopped; a base, while none of its level 0 pots runs."""
    if users := _users(eng, key, None):
        raise StateError(f"{_in_use(label, users)}: stop {'it' if len(users) == 1 else 'them'} first")


def snapshot(eng: Engine, pot: str | None, fscomp: str | None, name: str | None) -> str:
    lock, key, label = _target(eng, pot, fscomp)
    with eng.lock(lock):
        _stopped(eng, key, label)
        snap = names.name("snapshot", name) if name else snapshot_name(eng, key)
        eng.execute("snapshot", _subject(lock), eng.snap.snapshot(key, snap))
    return f"snapshot {snap} of {label} taken"


def rollback(eng: Engine, pot: str | None, fscomp: str | None, snap: str | None, force: bool = False) -> str:
    """Refused while a running pot uses what is rolled back (its tree, or an fscomp it mounts): a
    dir rollback swaps the directory for a new one, which would leave the pot on the deleted one,
    and on ZFS its files would change under it. With `force` those pots are stopped, and started
    again afterwards."""
    lock, key, label = _target(eng, pot, fscomp)
    with eng.lock(lock):
        snap = snap or eng.snap.latest(key)
        if snap is None:
            raise NotFound(f"{label} has no snapshot")
        users = _users(eng, key, fscomp)
        if users and not force:
            them = "it" if len(users) == 1 else "them"
            raise StateError(f"{_in_use(label, users)}: stop {them} first, or use -F to stop and restart {them}")
        steps = eng.snap.rollback(key, snap)  # refused (a later snapshot in use) before anything stops
        for name in users:
            with _pot_lock(eng, lock, name):
                lifecycle.stop_locked(eng, name)
        try:
            eng.execute("rollback", _subject(lock), steps)
        finally:
            _restart(eng, lock, users)
    return f"{label} rolled back to {snap}" + (f"; restarted {', '.join(users)}" if users else "")


def _pot_lock(eng: Engine, held: str, name: str) -> AbstractContextManager[None]:
    """A pot's lock, unless it is the one we hold (a second flock of it would wait for ourselves)."""
    return nullcontext() if held == f"pot-{name}" else eng.lock(f"pot-{name}")


def _restart(eng: Engine, held: str, names_: list[str]) -> None:
    """Start the pots a rollback -F stopped; one that fails does not keep the others stopped."""
    failed = []
    for name in names_:
        if eng.dry_run:  # nothing was stopped: render the start it would run
            eng.execute("start", f"pot:{name}", eng.host.start_plan(lifecycle.spec(eng, eng.pot(name))))
            continue
        try:
            with _pot_lock(eng, held, name):
                why = lifecycle.start_locked(eng, name)
        except LadleError as e:
            why = str(e)
        if why:
            failed.append(f"{name} ({why})")
    if failed:
        raise StateError(f"rolled back, but could not start again: {'; '.join(failed)}")


def promote(eng: Engine, pot: str | None, fscomp: str | None) -> str:
    lock, key, label = _target(eng, pot, fscomp)
    with eng.lock(lock):
        if not eng.snap.info(key).origin:
            return f"{label} does not depend on another snapshot: nothing to promote"
        eng.execute("promote", _subject(lock), eng.snap.promote(key))
    return f"{label} promoted"


def purge(eng: Engine, pot: str | None, fscomp: str | None, keep: int, everything: bool) -> str:
    """pot's purge-snapshots keeps the latest; -k keeps more, -a none. Snapshots in use stay."""
    lock, key, label = _target(eng, pot, fscomp)
    if keep < 0:
        raise UsageError("-k must be 0 or more")
    keep = 0 if everything else keep
    with eng.lock(lock):
        snaps = eng.snap.snapshots(key)
        doomed = snaps[:len(snaps) - keep] if keep else snaps
        steps: list[Step] = []
        for s in doomed:
            steps += eng.snap.remove_snapshot(key, s)
        eng.execute("purge-snapshots", _subject(lock), steps, on_crash="finish")
    return f"removed {len(doomed)} snapshot(s) of {label}"


def list_snapshots(eng: Engine, pot: str | None, fscomp: str | None) -> list[str]:
    _, key, _ = _target(eng, pot, fscomp)
    return eng.snap.snapshots(key)

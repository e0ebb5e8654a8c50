"""Snapshots of pots and fscomps: snapshot, rollback, promote, purge (pot §4.6)."""

from __future__ import annotations

import time

from ladle import names
from ladle.engine import runs
from ladle.engine.core import Engine
from ladle.errors import NotFound, StateError, UsageError
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
    """(lock name, layer key, label) for `-p POT` or `-f FSCOMP` (exactly one)."""
    if bool(pot) == bool(fscomp):
        raise UsageError("give exactly one of -p POT or -f FSCOMP")
    if pot:
        row = eng.pot(pot)
        if row["layer"] != f"pots/{pot}":
            raise UsageError(f"pot {pot} is level 0: its tree is base {row['base']}, which has its own snapshots")
        return f"pot-{pot}", row["layer"], f"pot {pot}"
    row = eng.fscomp(fscomp or "")
    return f"fscomp-{fscomp}", row["layer"], f"fscomp {fscomp}"


def _subject(lock: str) -> str:
    """The intent log's subject for a lock name ('pot-web' -> 'pot:web'): recovery takes the same lock."""
    return locks.lock_subject(lock)


def _stopped(eng: Engine, pot: str | None) -> None:
    if pot and runs.is_running(eng, pot):
        raise StateError(f"pot {pot} is running: stop it first")


def _unused(eng: Engine, fscomp: str | None) -> None:
    """A dir rollback swaps the fscomp's directory for a new one: a running pot that mounts it
    would be left on the deleted one, so it is refused while such a pot runs (ZFS rolls back in place)."""
    if not fscomp or eng.snap.name != "dir":
        return
    rows = eng.store.all("pot_mounts", order="pot", kind="fscomp", source=fscomp)
    if users := sorted({r["pot"] for r in rows if runs.is_running(eng, r["pot"])}):
        raise StateError(f"fscomp {fscomp} is mounted in running pot(s) {', '.join(users)}: stop them first")


def snapshot(eng: Engine, pot: str | None, fscomp: str | None, name: str | None) -> str:
    lock, key, label = _target(eng, pot, fscomp)
    with eng.lock(lock):
        _stopped(eng, pot)
        snap = names.name("snapshot", name) if name else snapshot_name(eng, key)
        eng.execute("snapshot", _subject(lock), eng.snap.snapshot(key, snap))
    return f"snapshot {snap} of {label} taken"


def rollback(eng: Engine, pot: str | None, fscomp: str | None, snap: str | None) -> str:
    lock, key, label = _target(eng, pot, fscomp)
    with eng.lock(lock):
        _stopped(eng, pot)
        _unused(eng, fscomp)
        snap = snap or eng.snap.latest(key)
        if snap is None:
            raise NotFound(f"{label} has no snapshot")
        eng.execute("rollback", _subject(lock), eng.snap.rollback(key, snap))
    return f"{label} rolled back to {snap}"


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

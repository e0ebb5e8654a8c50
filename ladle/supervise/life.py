"""The monitor's part of restart policies and healthchecks, as timers in its event loop.

Everything here is also in the `runs` table, so a killed monitor loses nothing: the decision to
restart (`restart_at`, with the back-off's `streak`) is written when the pot ends by itself, before
its teardown; the end is recorded as state `restarting`; a new monitor arms the timer again from
that row (`adopt`). The restart itself is `ladle restart --due POT`, our child: the same start plan
as any start (host-side steps, hooks, dependencies), which does nothing if a `ladle stop` came
first (a stop is final). A healthcheck is `ladle healthcheck POT`, our child too (an exec through
this monitor, with the check's timeout); its result goes into the run's `health` and
`health_fails`, and a new monitor schedules the next check of every pot it adopts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from ladle.supervise import policy
from ladle.supervise.records import PotState, Proc, destroys
from ladle.supervise.spawn import fork_child

if TYPE_CHECKING:
    from ladle.supervise.monitor import Monitor

KILL_GRACE = 5.0  # seconds past a check's timeout before its `ladle healthcheck` is killed


def configure(mon: Monitor, pot: PotState, row: dict[str, Any] | None = None) -> None:
    """Read the pot's policy and healthcheck (at its start, or from `row` when adopted) and
    schedule its first check."""
    found = mon.runs.store.get("pots", name=pot.name)
    if found is None:
        return
    attrs, conf = json.loads(found["attrs"]), json.loads(found.get("life") or "{}")
    pot.restart = str(attrs.get("restart", "no"))
    pot.restart_unhealthy = attrs.get("restart-unhealthy") == "YES"
    pot.check = conf.get("health")
    run = row or mon.runs.store.get("runs", pot=pot.name) or {}
    pot.restarts, pot.streak = int(run.get("restarts") or 0), int(run.get("streak") or 0)
    pot.started_at = float(run.get("started") or time.time())
    pot.restart_at = run.get("restart_at")
    if pot.check and not pot.main_done:
        pot.health = run.get("health") or "starting"
        pot.health_fails = int(run.get("health_fails") or 0)
        if row is None:
            mon.runs.update(pot, health=pot.health, health_fails=0)
        _schedule(mon, pot, float(pot.check["interval"]))


def _teardown_verb(pot: PotState) -> bool:
    """Is the pot's teardown a `ladle stop` (not the `destroy` of a `run --rm -d` pot)?"""
    return bool(pot.on_exit) and not destroys(pot.on_exit)


def decide(mon: Monitor, pot: PotState, code: int | None) -> None:
    """A pot ended by itself: if its policy says so, record when it starts again (before its
    teardown, so a monitor killed meanwhile loses nothing)."""
    if pot.restart_at is not None or not _teardown_verb(pot) or not policy.restarts(pot.restart, code, pot.restarts):
        return
    if time.time() - pot.started_at >= policy.RESET_AFTER:
        pot.streak = 0
    pot.restart_at = time.time() + policy.delay(pot.streak)
    pot.streak += 1
    mon.runs.update(pot, restart_at=pot.restart_at, streak=pot.streak)


def arm(mon: Monitor, name: str, at: float) -> None:
    """Start the pot again at `at` (wall clock: it survives us in the runs table)."""
    mon.pending[name] = at
    mon.later(max(0.0, at - time.time()), functools.partial(_restart, mon, name, at))


def _restart(mon: Monitor, name: str, at: float) -> None:
    if mon.pending.get(name) != at:
        return
    del mon.pending[name]
    _run_ladle(mon, name, "restart", ["restart", "--due", name])


def _ladle(mon: Monitor) -> list[str]:
    return [sys.executable, "-m", "ladle", "--root", mon.root]


def _run_ladle(mon: Monitor, name: str, role: str, verb: list[str], quiet: bool = False) -> Proc:
    """`ladle VERB` as our child: its output goes to our log (a restart's, with its hooks'), or
    nowhere (`quiet`: a healthcheck's, every interval; its exit code is what counts)."""
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        out = null if quiet else 2
        child = fork_child([*_ladle(mon), *verb], dict(os.environ), [null, out, out], lambda: None)
    finally:
        os.close(null)
    os.close(child.report)
    proc = Proc(child.pid, None, name, role, True)
    mon.procs[child.pid] = proc
    mon.watch.add(child.pid)
    return proc


# Healthchecks ----------------------------------------------------------------------------------

def _current(mon: Monitor, pot: PotState, main: Proc | None) -> bool:
    return mon.pots.get(pot.name) is pot and pot.main is main and not pot.main_done and not pot.stopping


def _schedule(mon: Monitor, pot: PotState, after: float) -> None:
    mon.later(after, functools.partial(_check, mon, pot, pot.main))


def _check(mon: Monitor, pot: PotState, main: Proc | None) -> None:
    if not _current(mon, pot, main) or pot.check is None:
        return
    proc = _run_ladle(mon, pot.name, "health", ["healthcheck", pot.name], quiet=True)
    limit = float(pot.check["timeout"]) + KILL_GRACE
    mon.later(limit, functools.partial(_overdue, mon, proc))


def _overdue(mon: Monitor, proc: Proc) -> None:
    if mon.procs.get(proc.pid) is proc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def checked(mon: Monitor, proc: Proc, code: int | None) -> None:
    """A check ended: count it, record the pot's health, restart an unhealthy one if asked, and
    schedule the next check."""
    pot = mon.pots.get(proc.pot)
    if pot is None or pot.check is None or pot.main_done or pot.stopping:
        return
    before = pot.health
    if code == 0:
        pot.health, pot.health_fails = "healthy", 0
    elif time.time() - pot.started_at >= float(pot.check["start_period"]) or pot.health == "healthy":
        pot.health_fails += 1
        if pot.health_fails >= int(pot.check["retries"]):
            pot.health = "unhealthy"
    mon.runs.update(pot, health=pot.health, health_fails=pot.health_fails)
    if pot.health == "unhealthy" and before != "unhealthy" and pot.restart_unhealthy and _teardown_verb(pot):
        print(f"ladle monitor: pot {pot.name} is unhealthy: restarting it", file=sys.stderr)
        pot.restart_at = time.time() + policy.delay(pot.streak)
        pot.streak += 1
        mon.runs.update(pot, restart_at=pot.restart_at, streak=pot.streak)
        mon.teardown(pot)
        return
    _schedule(mon, pot, float(pot.check["interval"]))

"""A new monitor takes over the pots of one that died, from the `runs` table.

For each run recorded as running: a pid 1 or main process still alive (and the same process, by
its start time) is watched again, its FIFOs and log are reopened, and the run is marked as this
monitor's. A main process that exited meanwhile gets the wait status the keeper recorded in
`run/exits/` (it reaped it); one with no record is recorded as ended with its status lost. A pot
whose pid 1 is gone is torn down (`on_exit`), as if it had just ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from ladle import platform
from ladle.supervise import life
from ladle.supervise.keeper import exits_dir
from ladle.supervise.launcher import Sandbox
from ladle.supervise.records import PotState, Proc

if TYPE_CHECKING:
    from ladle.supervise.monitor import Monitor

Recorded = dict[tuple[int, int | None], str]


def adopt(mon: Monitor) -> None:
    recorded = _recorded_exits(mon.root)
    for row in mon.runs.running():
        try:
            _adopt(mon, row, recorded)
        except (OSError, ValueError) as e:  # not half-adopted: `ladle gc` stops a pot no monitor owns
            print(f"ladle monitor: cannot adopt pot {row['pot']}: {e}", file=sys.stderr)
            pot = mon.pots.pop(row["pot"], None)
            if pot is not None:
                mon.output.close(pot)
            for pid in [p.pid for p in mon.procs.values() if p.pot == row["pot"]]:
                del mon.procs[pid]
    for row in mon.runs.restarting():  # ended, to be started again by their policy
        life.arm(mon, row["pot"], float(row["restart_at"] or 0))
    for path in recorded.values():  # exits of processes no pot claims
        with contextlib.suppress(OSError):
            os.unlink(path)


def _recorded_exits(root: str) -> Recorded:
    found: Recorded = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(exits_dir(root)):
            pid_s, _, start_s = entry.partition(".")
            if pid_s.isdigit() and not entry.endswith(".tmp"):
                found[(int(pid_s), None if start_s == "-" else int(start_s))] = os.path.join(exits_dir(root), entry)
    return found


def _adopt(mon: Monitor, row: dict[str, Any], recorded: Recorded) -> None:
    name = row["pot"]
    pot = PotState(name, persistent=bool(row.get("persistent", 1)),
                   on_exit=json.loads(row["on_exit"]) if row.get("on_exit") else None)
    if row.get("init_pid"):
        if platform.alive(row["init_pid"], row["init_start"]) and mon.watch.add(row["init_pid"]):
            pot.sandbox = Sandbox(row["init_pid"], row["init_start"])
            mon.procs[pot.sandbox.pid] = Proc(pot.sandbox.pid, pot.sandbox.start, name, "pid1", False)
        elif row.get("exit_code") is None and (row["main_pid"], row.get("main_start")) not in recorded:
            return  # nothing of it is left and nothing to record: gc tears it down
    if row.get("main_pid") is None:
        return
    main = Proc(row["main_pid"], row.get("main_start"), name, "main", False)
    pot.main = main
    mon.pots[name] = pot
    mon.output.reopen(pot, os.path.join(mon.root, "logs", f"{name}.log"), os.path.join(mon.root, "run", name))
    mon.runs.adopted(name)
    life.configure(mon, pot, row)  # its policy, a restart already decided, its next healthcheck
    if row.get("exit_code") is not None:  # its command had ended before (a persistent pot)
        pot.main_done, pot.exit_code = True, row["exit_code"]
    elif platform.alive(main.pid, main.start) and mon.watch.add(main.pid):
        mon.procs[main.pid] = main
    else:  # it ended while no monitor ran: the keeper has its status, or will tell us
        mon.procs[main.pid] = main
        status = _status(recorded.pop((main.pid, main.start), None))
        if status is not None:
            mon.ended(main, status)
        else:
            mon.await_status(main)
    if pot.sandbox is None and mon.launcher.name == "linux" and pot.main_done and not pot.stopping:
        pot.error = pot.error or "its pid 1 died"
        mon.teardown(pot)


def _status(path: str | None) -> int | None:
    """The wait status the keeper wrote (`PID START STATUS`), and the record gone."""
    if path is None:
        return None
    try:
        with open(path) as f:
            status = int(f.read().split()[2])
        os.unlink(path)
    except (OSError, ValueError, IndexError):
        return None
    return status

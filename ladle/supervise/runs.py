"""The monitor's rows of the `runs` table: how each pot's current or last run is going or ended.

The monitor is the only writer of a run from its start on; a command that stops a pot reads the
end from the monitor's answer. Updates apply only while the row is still this run's (same main
process), so a late write can never clobber a newer run of the same pot.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ladle.state.store import Store
from ladle.supervise.records import PotState


class Runs:
    def __init__(self, store: Store, monitor_pid: int, monitor_start: int | None) -> None:
        self.store = store
        self.pid = monitor_pid
        self.start = monitor_start

    def running(self) -> list[dict[str, Any]]:
        return self.store.all("runs", state="running")

    def restarting(self) -> list[dict[str, Any]]:
        return self.store.all("runs", state="restarting")

    def started(self, pot: PotState) -> None:
        """A new run; one that its restart policy started (the last ended `restarting`) counts
        one restart more and keeps the back-off's streak."""
        assert pot.main is not None
        sandbox = pot.sandbox
        last = self.store.get("runs", pot=pot.name) or {}
        again = last.get("state") == "restarting"
        self.store.put("runs", {"pot": pot.name}, {
            "restarts": int(last.get("restarts") or 0) + 1 if again else 0,
            "streak": int(last.get("streak") or 0) if again else 0,
            "pot": pot.name, "state": "running", "monitor_pid": self.pid, "monitor_start": self.start,
            "init_pid": sandbox.pid if sandbox else None, "init_start": sandbox.start if sandbox else None,
            "main_pid": pot.main.pid, "main_start": pot.main.start, "persistent": int(pot.persistent),
            "on_exit": json.dumps(pot.on_exit) if pot.on_exit else None, "started": time.time(),
            "finished": None, "exit_code": None, "error": None})

    def failed(self, name: str, error: str) -> None:
        """A start whose command could not run (`info` shows why)."""
        now = time.time()
        self.store.put("runs", {"pot": name}, {
            "pot": name, "state": "failed", "monitor_pid": self.pid, "monitor_start": self.start,
            "init_pid": None, "init_start": None, "main_pid": None, "main_start": None, "persistent": None,
            "on_exit": None, "started": now, "finished": now, "exit_code": None, "error": error})

    def update(self, pot: PotState, **changes: Any) -> None:
        if pot.main is None:
            return
        sets = ", ".join(f"{k}=?" for k in changes)
        self.store.db.execute(f"UPDATE runs SET {sets} WHERE pot=? AND main_pid=? AND main_start IS ?",
                              (*changes.values(), pot.name, pot.main.pid, pot.main.start))

    def adopted(self, name: str) -> None:
        self.store.db.execute("UPDATE runs SET monitor_pid=?, monitor_start=? WHERE pot=?",
                              (self.pid, self.start, name))

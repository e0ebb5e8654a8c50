"""The rows a supervisor writes to the `runs` table, from its own connection.

A forked supervisor never uses its parent's SQLite connection: each write opens the store, writes
one row atomically and closes it, so hundreds of idle supervisors hold no database handles.
"""

from __future__ import annotations

import time
from typing import Any

from ladle.state.store import Store


def write(store_path: str | None, pot: str, row: dict[str, Any], *, only_if_supervisor: int | None = None,
          ) -> None:
    """Replace the pot's run row; with `only_if_supervisor`, only while that pid still owns it
    (a late write from an old supervisor must not clobber a newer run)."""
    if not store_path:
        return
    store = Store(store_path)
    try:
        if only_if_supervisor is not None:
            old = store.get("runs", pot=pot)
            if old is not None and old.get("supervisor_pid") != only_if_supervisor:
                return
        store.put("runs", {"pot": pot}, {"pot": pot, **row})
    finally:
        store.close()


def running(sup_pid: int, sup_start: int | None, init_pid: int, init_start: int | None,
            main_pid: int | None) -> dict[str, Any]:
    return {"state": "running", "supervisor_pid": sup_pid, "supervisor_start": sup_start,
            "init_pid": init_pid, "init_start": init_start, "main_pid": main_pid,
            "started": time.time(), "finished": None, "exit_code": None, "error": None}


def ended(row: dict[str, Any], state: str, exit_code: int | None) -> dict[str, Any]:
    return {**row, "state": state, "exit_code": exit_code, "finished": time.time()}


def failed(sup_pid: int | None, sup_start: int | None, error: str) -> dict[str, Any]:
    now = time.time()
    return {"state": "failed", "supervisor_pid": sup_pid, "supervisor_start": sup_start,
            "init_pid": None, "init_start": None, "main_pid": None, "started": now,
            "finished": now, "exit_code": None, "error": error}

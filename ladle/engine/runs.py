"""What the `runs` table says of pots, and whether the host agrees they still run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ladle.engine.core import Engine
from ladle.hosts.base import OOM, RunRecord


def record(row: dict[str, Any] | None) -> RunRecord | None:
    if not row:
        return None
    fields = RunRecord.__dataclass_fields__
    return RunRecord(**{k: v for k, v in row.items() if k in fields})


def _status(run: RunRecord | None, alive: bool) -> str:
    """'running', 'stopped', 'exited (N)' ('exited (137, killed for memory)' after the kernel's OOM
    killer), 'failed', or 'crashed' when the record says running but
    nothing of the pot is left."""
    if run is None:
        return "stopped"
    if run.state == "running":
        return "running" if alive else "crashed"
    oom = ", killed for memory" if (run.error or "").startswith(OOM) else ""
    if run.state == "exited":
        return f"exited ({'?' if run.exit_code is None else run.exit_code}{oom})"
    return f"{run.state} ({run.exit_code}{oom})" if oom else run.state


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

"""Keeping the /etc/hosts of running pots current when a pot on their network comes, goes or is
renamed, or their own entries change (the drivers' `hosts_plan` writes the file)."""

from __future__ import annotations

from ladle import _log
from ladle.engine import lifecycle, runs
from ladle.engine.core import Engine
from ladle.engine.potnet import network_of
from ladle.errors import LadleError


def refresh(eng: Engine, network: str | None, skip: str | None = None) -> None:
    """Rewrite the /etc/hosts of every running pot on `network` (but `skip`)."""
    if network is None:
        return
    for row in eng.store.all("runs", order="pot", state="running"):
        if row["pot"] != skip:
            rewrite(eng, row["pot"], network)


def rewrite(eng: Engine, name: str, network: str | None = None) -> None:
    """Rewrite a running pot's /etc/hosts (if it is on `network`, when given), under its own lock
    and never while holding another pot's (two commands refreshing each other would deadlock).
    A failure is only warned about: the change that asked for it is made."""
    try:
        with eng.lock(f"pot-{name}"):
            pot = eng.pot(name) if eng.store.get("pots", name=name) else None
            run = runs.live_run(eng, name) if pot else None
            if pot is None or run is None or (network is not None and network_of(pot) != network):
                return
            steps = eng.host.hosts_plan(lifecycle.spec(eng, pot), run)
            if steps:
                eng.execute("hosts", f"pot:{name}", steps, on_crash="finish")
    except LadleError as e:
        _log.warning(f"pot {name}: /etc/hosts not updated: {e}")

"""Keeping the /etc/hosts of running pots current when a pot on their network comes, goes or is
renamed, or their own entries change (the drivers' `hosts_plan` writes the file).

The command that changed the state rewrites the file of every running pot concerned, after its
own plan and holding no pot's lock: a pot that is starting or stopping holds its lock for a while,
and 50 pots starting at once on one bridge must not queue behind each other. A pot that starts
meanwhile, its spec built before the change, checks its file once it runs (`lifecycle.start`).
Each pot's file is read from the state and written under the pot's `hosts-` lock, so the last
write is of the newest state."""

from __future__ import annotations

from ladle.engine import lifecycle
from ladle.engine.core import Engine
from ladle.engine.potnet import network_of


def refresh(eng: Engine, network: str | None, skip: str | None = None) -> None:
    """Rewrite the /etc/hosts of every running pot on `network` (but `skip`)."""
    if network is None:
        return
    for row in eng.store.all("runs", order="pot", state="running"):
        if row["pot"] != skip:
            rewrite(eng, row["pot"], network)


def rewrite(eng: Engine, name: str, network: str | None = None) -> None:
    """Rewrite a running pot's /etc/hosts (if it is on `network`, when given)."""
    pot = eng.pot(name) if eng.store.get("pots", name=name) else None
    if pot is not None and (network is None or network_of(pot) == network):
        lifecycle.write_hosts(eng, name)

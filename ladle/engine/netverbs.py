"""The verbs that change a pot's network: set-network (while stopped), export-ports and set-hosts."""

from __future__ import annotations

from ladle.engine import hostsfile, netspec, networks, potnet, runs
from ladle.engine.core import Engine
from ladle.errors import StateError
from ladle.state.steps import put


def set_network(eng: Engine, name: str, req: potnet.Request) -> str:
    """Change a stopped pot's network type: its old addresses are released and new ones leased in
    one plan; its exports are kept on a bridge type and dropped on the others."""
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        if runs.is_running(eng, name):
            raise StateError(f"pot {name} is running: stop it first")
        old_network = potnet.network_of(pot)
        netrow, takes = potnet.settle(eng, name, req, pot["net"])
        steps = networks.release(eng, name)
        dropped = req.type not in potnet.BRIDGES and bool(eng.store.all("exports", pot=name))
        if dropped:
            steps += potnet.drop_exports(eng, name)
        steps += takes
        steps.append(put("pots", {"name": name}, {**pot, "network": req.type, "net": netrow}, pot))
        eng.execute("set-network", f"pot:{name}", steps)
    for network in dict.fromkeys([old_network, netrow.get("network")]):
        hostsfile.refresh(eng, network, skip=name)
    return f"pot {name}: network {req.type}" + ("; its port exports were dropped" if dropped else "")


def export_ports(eng: Engine, name: str, specs: list[str]) -> str:
    """pot's export-ports: replace the pot's exports (active while it runs: a running pot gets
    them at its next start)."""
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        steps = potnet.drop_exports(eng, name) + potnet.exports(eng, name, pot["network"], specs)
        eng.execute("export-ports", f"pot:{name}", steps)
        later = runs.is_running(eng, name)
    if eng.dry_run:
        return ""
    from ladle._models import Export
    got = [Export(**p).text for p in netspec.ports(eng, name)]
    return (f"pot {name}: exports {', '.join(got) or 'no port'}"
            + (" (applied at its next start)" if later else ""))


def set_hosts(eng: Engine, name: str, entries: list[str]) -> str:
    """pot's set-hosts: replace the pot's own /etc/hosts entries; a running pot's file at once."""
    hosts = potnet.hosts_entries(entries)
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        eng.execute("set-hosts", f"pot:{name}",
                    [put("pots", {"name": name}, {**pot, "net": {**pot["net"], "hosts": hosts}}, pot)])
    hostsfile.rewrite(eng, name)
    return f"pot {name}: {len(hosts)} hosts entr{'y' if len(hosts) == 1 else 'ies'} set"

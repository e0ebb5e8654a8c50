"""Networks and their address leases (the IPAM): list and show them, create and destroy private
bridges, and the lease steps that pot verbs add to their plans (destroy releases, rename moves).

The public bridge's network is the configuration's (`network`, `network6`, the latter by default
the state root's own ULA prefix); private bridges are rows of `networks`, carved out of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ladle import names
from ladle.engine.core import Engine
from ladle.errors import Exists, NotFound, UsageError
from ladle.net import ipam
from ladle.net.steps import BridgeCarve, BridgeForget, LeaseRelease, LeaseTake

if TYPE_CHECKING:
    from ladle._models import Network
    from ladle.plan.steps import Step


def prefix6(eng: Engine) -> str:
    """The IPv6 prefix bridges' /64s come from: the configured one, or the root's ULA /48."""
    gid = eng.store.setting("ula_global_id")
    return eng.cfg.network6 or str(ipam.ula(gid or "0" * 10))


def rows(eng: Engine) -> list[dict[str, Any]]:
    """Every network: the public bridge's first, then the private bridges by name."""
    public = {"name": ipam.PUBLIC, "kind": "public-bridge", "ipv4": eng.cfg.network,
              "ipv6": str(ipam.public6(ipam.parse6(prefix6(eng))))}
    return [public, *eng.store.all("networks", order="name")]


def row(eng: Engine, name: str) -> dict[str, Any]:
    for r in rows(eng):
        if r["name"] == name:
            return r
    raise NotFound(f"network {name} does not exist (see 'ladle network ls')")


def _model(eng: Engine, r: dict[str, Any], leases: bool) -> Network:
    from ladle._models import Lease, Network

    def gw(text: str | None) -> str | None:
        return str(ipam.gateway(ipam.parse(text))) if text else None

    held = sorted(eng.store.all("leases", network=r["name"]), key=lambda x: (x["family"], ipam.parse(x["address"])))
    return Network(r["name"], r["kind"], r["ipv4"], gw(r["ipv4"]), r["ipv6"], gw(r["ipv6"]),
                   [Lease(x["address"], x["pot"]) for x in held] if leases else [])


def list_networks(eng: Engine) -> list[Network]:
    return [_model(eng, r, leases=True) for r in rows(eng)]


def show(eng: Engine, name: str) -> Network:
    return _model(eng, row(eng, name), leases=True)


def create_bridge(eng: Engine, name: str, size: int | None, network: str | None) -> str:
    """pot's create-private-bridge: SIZE pots (see `ipam.block_for`), or the network `-n` gives."""
    names.name("bridge", name)
    if name == ipam.PUBLIC:
        raise UsageError(f"{ipam.PUBLIC} is the public bridge's network: choose another name")
    if (size is None) == (network is None):
        raise UsageError("give one of -S SIZE or -n NETWORK")
    prefixlen = ipam.block_for(size) if size is not None else None
    with eng.lock(f"bridge-{name}"):
        if eng.store.get("networks", name=name):
            raise Exists(f"network {name} already exists")
        step = BridgeCarve(name, eng.cfg.network, prefix6(eng), prefixlen, network)
        step.make(eng.store)  # one line before the plan (in a dry run too) for a block that does not fit
        eng.execute("create-private-bridge", f"bridge:{name}", [step])
    if eng.dry_run:
        return ""
    made = row(eng, name)
    return f"created private bridge {name}: {made['ipv4']}" + (f" and {made['ipv6']}" if made["ipv6"] else "")


def destroy_bridge(eng: Engine, name: str) -> str:
    """pot's destroy -B; refused while a pot has an address on the bridge."""
    if name == ipam.PUBLIC:
        raise UsageError(f"{ipam.PUBLIC} is the public bridge's network: it cannot be destroyed")
    with eng.lock(f"bridge-{name}"):
        r = eng.store.get("networks", name=name)
        if r is None:
            raise NotFound(f"private bridge {name} does not exist (see 'ladle network ls')")
        users = sorted({x["pot"] for x in eng.store.all("leases", network=name)})
        if users:
            raise Exists(f"private bridge {name} is used by pots {', '.join(users)}")
        eng.execute("destroy-private-bridge", f"bridge:{name}", [BridgeForget(name, r)], on_crash="finish")
    return f"destroyed private bridge {name}"


def lease(eng: Engine, pot: str, network: str, family: int, address: str | None = None) -> LeaseTake:
    """The step that leases a pot an address on `network` (`address`, or the next free one).
    A chosen address is checked now, for one line before any plan runs, and again when the step
    applies, inside the transaction that records it."""
    r = row(eng, network)
    prefix = r[f"ipv{family}"]
    if prefix is None:
        raise UsageError(f"network {network} has no IPv{family} prefix")
    step = LeaseTake(network, pot, family, prefix, address)
    if address is not None:
        step.pick(eng.store)
    return step


def release(eng: Engine, pot: str) -> list[Step]:
    """Steps that give back every address the pot holds (undone, they take them back)."""
    return [LeaseRelease(x["network"], pot, x["family"], x["address"])
            for x in eng.store.all("leases", order="network, family", pot=pot)]


def move(eng: Engine, old: str, new: str) -> list[Step]:
    """Steps that move pot `old`'s leases to `new` (rename)."""
    steps: list[Step] = []
    for x in eng.store.all("leases", order="network, family", pot=old):
        steps += [LeaseRelease(x["network"], old, x["family"], x["address"]),
                  LeaseTake(x["network"], new, x["family"], None, x["address"])]
    return steps

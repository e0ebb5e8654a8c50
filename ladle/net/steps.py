"""The IPAM's state steps: a lease or a private bridge is chosen and recorded in one write
transaction of the store, so that two commands (50 pots starting at once) never get the same
address or overlapping bridges; the tables' keys refuse it again if anything got past that."""

from __future__ import annotations

import time
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import TYPE_CHECKING

from ladle.errors import Exists, HostError, NotFound
from ladle.net import ipam
from ladle.plan.steps import Context, Step

if TYPE_CHECKING:
    from ladle.state.store import Store


def _store(ctx: Context) -> Store:
    if ctx.store is None:
        raise HostError("no state store")
    return ctx.store


def holes(store: Store, network: str, net: ipam.Network) -> dict[str, ipam.Network]:
    """The private bridges carved out of `net` (the public bridge's IPv4 network)."""
    found = {}
    for row in store.all("networks"):
        text = row[f"ipv{net.version}"]
        if row["name"] != network and text and _inside(ip_network(text), net):
            found[row["name"]] = ip_network(text)
    return found


def _inside(a: ipam.Network, b: ipam.Network) -> bool:
    return a.version == b.version and int(a.network_address) >= int(b.network_address) \
        and int(a.broadcast_address) <= int(b.broadcast_address)


@dataclass
class LeaseTake(Step):
    """Lease an address of `network` (`prefix`) to a pot: `address`, checked, or the next free
    one. Without `prefix` it records `address` as it is (the undo of a release)."""

    network: str
    pot: str
    family: int
    prefix: str | None
    address: str | None = None

    def render(self) -> list[str]:
        what = self.address or f"the next free IPv{self.family} address"
        return [f"# state: lease {what} of network {self.network} to pot {self.pot}"]

    def apply(self, ctx: Context) -> None:
        store = _store(ctx)
        with store.transaction():
            store.insert("leases", {"network": self.network, "address": self.pick(store), "pot": self.pot,
                                    "family": self.family, "created": time.time()})

    def pick(self, store: Store) -> str:
        """The address, from what the store holds now (inside the caller's transaction)."""
        if self.prefix is None:
            return str(self.address)
        if self.network != ipam.PUBLIC and not store.get("networks", name=self.network):
            raise NotFound(f"network {self.network} does not exist")
        net = ipam.parse(self.prefix)
        leases = store.all("leases", network=self.network)
        if any(r["pot"] == self.pot and r["family"] == self.family for r in leases):
            raise Exists(f"pot {self.pot} already has an IPv{self.family} address on network {self.network}")
        used = {ip_address(r["address"]): r["pot"] for r in leases}
        cut = holes(store, self.network, net)
        if self.address is not None:
            return str(ipam.check(self.network, net, self.address, used, cut))
        return str(ipam.first_free(self.network, net, set(used), list(cut.values())))

    def inverse(self) -> list[Step]:
        return [LeaseRelease(self.network, self.pot, self.family)]


@dataclass
class LeaseRelease(Step):
    """Give a pot's address on `network` back; `address` (what it was) lets undo take it again."""

    network: str
    pot: str
    family: int
    address: str | None = None

    def render(self) -> list[str]:
        return [f"# state: release {self.address or f'the IPv{self.family} address'} of pot {self.pot}"
                f" on network {self.network}"]

    def apply(self, ctx: Context) -> None:
        _store(ctx).delete("leases", network=self.network, pot=self.pot, family=self.family)

    def inverse(self) -> list[Step]:
        return [LeaseTake(self.network, self.pot, self.family, None, self.address)] if self.address else []


@dataclass
class BridgeCarve(Step):
    """Record private bridge `name`: its IPv4 network, `chosen` or the first free block of
    `prefixlen` in `parent4`, and the next free /64 of `prefix6` (if it has room)."""

    name: str
    parent4: str
    prefix6: str
    prefixlen: int | None = None
    chosen: str | None = None

    def render(self) -> list[str]:
        what = self.chosen or f"the first free /{self.prefixlen} of {self.parent4}"
        return [f"# state: record networks name={self.name} ({what})"]

    def apply(self, ctx: Context) -> None:
        store = _store(ctx)
        with store.transaction():
            store.insert("networks", self.make(store))

    def make(self, store: Store) -> dict[str, object]:
        """The bridge's row, from what the store holds now (inside the caller's transaction)."""
        if store.get("networks", name=self.name):
            raise Exists(f"network {self.name} already exists")
        parent = ipam.parse4(self.parent4)
        bridges = holes(store, ipam.PUBLIC, parent)
        used = {ip_address(r["address"]): f"leased to pot {r['pot']}"
                for r in store.all("leases", network=ipam.PUBLIC, family=4)}
        used |= {parent.network_address: "the public bridge's network address",
                 ipam.gateway(parent): "the public bridge's gateway",
                 parent.broadcast_address: "the public bridge's broadcast address"}
        if self.chosen is not None:
            net4 = ipam.check_block(parent, self.chosen, bridges, used)
        else:
            net4 = ipam.carve(parent, int(self.prefixlen or 0), bridges, used)
        six = [ip_network(r["ipv6"]) for r in store.all("networks") if r["ipv6"]]
        net6 = ipam.subnet6(ipam.parse6(self.prefix6), six)
        return {"name": self.name, "kind": "private-bridge", "ipv4": str(net4),
                "ipv6": str(net6) if net6 else None, "created": time.time()}

    def inverse(self) -> list[Step]:
        return [BridgeForget(self.name)]


@dataclass
class BridgeForget(Step):
    """Forget private bridge `name`; refused while a pot has an address on it. `row` (what it
    was) lets undo record it again."""

    name: str
    row: dict[str, object] | None = None

    def render(self) -> list[str]:
        return [f"# state: forget networks name={self.name}"]

    def apply(self, ctx: Context) -> None:
        store = _store(ctx)
        with store.transaction():
            users = sorted({r["pot"] for r in store.all("leases", network=self.name)})
            if users:
                raise Exists(f"private bridge {self.name} is used by pots {', '.join(users)}")
            store.delete("networks", name=self.name)

    def inverse(self) -> list[Step]:
        return [BridgeRecord(self.row)] if self.row else []


@dataclass
class BridgeRecord(Step):
    """Record a private bridge as it was (the undo of forgetting it)."""

    row: dict[str, object]

    def render(self) -> list[str]:
        return [f"# state: record networks name={self.row['name']}"]

    def apply(self, ctx: Context) -> None:
        _store(ctx).insert("networks", dict(self.row))

    def inverse(self) -> list[Step]:
        return [BridgeForget(str(self.row["name"]))]

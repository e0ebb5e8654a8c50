"""A pot's network settings: the type, and the `net` JSON of its row that goes with it, checked,
with the lease and export steps a plan adds (create, run, clone, set-network, export-ports).

`net` holds `network` (the IPAM network of a bridge type: 'public' or the private bridge's name),
`stack` (for the types with a network of their own, fixed at create: the leases follow it),
`aliases` ([{interface, address}] of an alias pot), `dns` (servers for /etc/resolv.conf) and
`hosts` ([[name, ip]] from set-hosts). Leases are rows of `leases`, exports rows of `exports`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

from ladle import names
from ladle.config import IFNAME, STACKS
from ladle.engine import networks
from ladle.engine.core import Engine
from ladle.errors import Exists, NotFound, UsageError
from ladle.net import ipam
from ladle.net.ports import ExportDrop, ExportTake, parse
from ladle.net.steps import LeaseTake, holes

if TYPE_CHECKING:
    from ladle.plan.steps import Step

TYPES = ("inherit", "none", "alias", "public-bridge", "private-bridge")
BRIDGES = ("public-bridge", "private-bridge")
FAMILIES = {"ipv4": (4,), "ipv6": (6,), "dual": (4, 6)}
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                       r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*")


@dataclass
class Request:
    """What a command asked of a pot's network: -N, -i, -B, -S and -d (None: not given)."""

    type: str = "none"
    addresses: list[str] = field(default_factory=list)
    bridge: str | None = None
    stack: str | None = None
    dns: list[str] | None = None


def request(net: Request | str | None) -> Request:
    """A Request from what a caller gave: one, a bare network type, or nothing (none)."""
    if isinstance(net, Request):
        return net
    return Request(net or "none")


def network_of(pot: dict[str, Any]) -> str | None:
    """The IPAM network a pot's addresses come from (None for the types without a bridge)."""
    return pot["net"].get("network") if pot["network"] in BRIDGES else None


def stack_of(eng: Engine, pot: dict[str, Any]) -> str:
    return str(pot["net"].get("stack") or eng.cfg.stack)


def settle(eng: Engine, name: str, req: Request,
           old: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[Step]]:
    """The pot's `net` for `req` (keeping `old`'s DNS servers and hosts entries unless given
    again), and the steps that lease its addresses; every choice checked now, for one line."""
    if req.type not in TYPES:
        raise UsageError(f"invalid network type {req.type!r}: use {', '.join(TYPES)}")
    if req.stack is not None and req.stack not in STACKS:
        raise UsageError(f"invalid stack {req.stack!r}: use {', '.join(STACKS)}")
    if req.bridge is not None and req.type != "private-bridge":
        raise UsageError(f"-B {req.bridge} is for -N private-bridge only, not -N {req.type}")
    old = old or {}
    net: dict[str, Any] = {k: old[k] for k in ("dns", "hosts") if k in old}
    if req.dns is not None:
        if req.dns and req.type not in ("alias", *BRIDGES):
            raise UsageError(f"DNS servers are for a pot with a network of its own (alias or a bridge), "
                             f"not one of -N {req.type}")
        net["dns"] = [str(_ip("DNS server", d)) for d in dict.fromkeys(req.dns)]
    if req.type in ("inherit", "none"):
        if req.addresses:
            raise UsageError(f"-i is for -N alias, public-bridge or private-bridge, not -N {req.type}")
        if req.stack:
            net["stack"] = req.stack
        return net, []
    net["stack"] = stack = req.stack or eng.cfg.stack
    if req.type == "alias":
        net["aliases"] = _aliases(eng, name, req.addresses, stack)
        return net, []
    net["network"] = network = _bridge(eng, req) if req.type == "private-bridge" else ipam.PUBLIC
    chosen = _chosen(req.addresses, stack)
    return net, [lease(eng, name, network, family, chosen.get(family)) for family in FAMILIES[stack]]


def _bridge(eng: Engine, req: Request) -> str:
    if req.bridge is None:
        raise UsageError("-N private-bridge needs -B BRIDGE (see 'ladle network ls')")
    names.name("bridge", req.bridge)
    if req.bridge == ipam.PUBLIC or not eng.store.get("networks", name=req.bridge):
        raise NotFound(f"private bridge {req.bridge} does not exist (see 'ladle network ls')")
    return req.bridge


def _ip(what: str, text: str) -> Any:
    try:
        return ip_address(text)
    except ValueError:
        raise UsageError(f"{what} {names.short(text)}: not an IP address") from None


def _family(what: str, addr: Any, stack: str) -> int:
    if addr.version not in FAMILIES[stack]:
        raise UsageError(f"{what} {addr} is an IPv{addr.version} address, but the pot's stack is {stack} (-S)")
    return int(addr.version)


def _chosen(addresses: list[str], stack: str) -> dict[int, str]:
    """The addresses -i chose for a bridge, by family ('auto' leaves a family to the IPAM)."""
    chosen: dict[int, str] = {}
    for text in addresses:
        if text == "auto":
            continue
        addr = _ip("-i", text)
        family = _family("-i", addr, stack)
        if family in chosen:
            raise UsageError(f"-i {addr}: one address per IP version (also -i {chosen[family]})")
        chosen[family] = str(addr)
    return chosen


def lease(eng: Engine, pot: str, network: str, family: int, address: str | None) -> LeaseTake:
    """`networks.lease`, with a chosen address checked as if the pot's own addresses were free
    already (set-network releases them earlier in the same plan)."""
    r = networks.row(eng, network)
    prefix = r[f"ipv{family}"]
    if prefix is None:
        raise UsageError(f"network {network} has no IPv{family} prefix: choose another stack (-S)")
    if address is None:
        return networks.lease(eng, pot, network, family)
    net = ipam.parse(prefix)
    used = {ip_address(x["address"]): x["pot"] for x in eng.store.all("leases", network=network) if x["pot"] != pot}
    ipam.check(network, net, address, used, holes(eng.store, network, net))
    return LeaseTake(network, pot, family, prefix, address)


def default_interface(eng: Engine) -> str:
    """The interface of this host's IPv4 default route (/proc/net/route of our network namespace;
    a FreeBSD host has none, nor has a plan for another host: there extif or -i IF|IP says)."""
    try:
        if eng.offline:
            raise OSError
        with open("/proc/net/route") as f:
            for line in f.read().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 7 and cols[1] == "00000000" and cols[7] == "00000000":
                    return cols[0]
    except OSError:
        pass
    raise UsageError("this host has no IPv4 default route: give the interface too, -i IF|IP "
                     "(or set extif in the configuration)")


def _aliases(eng: Engine, name: str, addresses: list[str], stack: str) -> list[dict[str, str]]:
    """An alias pot's `[IF|]IP` addresses, checked: none is `auto` nor another pot's alias."""
    if not addresses:
        raise UsageError("-N alias needs -i [IF|]IP: the address to add to a host interface")
    taken = {a["address"]: p["name"] for p in _pot_nets(eng) if p["name"] != name for a in p["net"].get("aliases", [])}
    out: list[dict[str, str]] = []
    for text in addresses:
        if text == "auto":
            raise UsageError("-N alias needs -i [IF|]IP: auto is for the bridge types")
        iface, bar, ip = text.rpartition("|")
        iface = iface if bar else eng.cfg.extif or default_interface(eng)
        if not IFNAME.fullmatch(iface):
            raise UsageError(f"-i {names.short(text)}: invalid interface name {names.short(iface)}")
        _interface_exists(eng, iface)
        addr = _ip("-i", ip)
        _family("-i", addr, stack)
        if addr.is_unspecified or addr.is_loopback or addr.is_multicast or addr.is_link_local:
            raise UsageError(f"-i {addr}: not an address a pot can have on a host interface")
        if str(addr) in taken:
            raise Exists(f"-i {addr} is already an alias of pot {taken[str(addr)]}")
        if any(a["address"] == str(addr) for a in out):
            raise UsageError(f"-i {addr} is given twice")
        out.append({"interface": iface, "address": str(addr)})
    return out


def _interface_exists(eng: Engine, iface: str) -> None:
    """Refuse an interface this host does not have (not asked when planning for another host)."""
    import socket
    if eng.offline:
        return
    try:
        socket.if_nametoindex(iface)
    except OSError:
        raise NotFound(f"-i: this host has no interface {iface}") from None


def _pot_nets(eng: Engine) -> list[dict[str, Any]]:
    return [{"name": r["name"], "net": json.loads(r["net"])} for r in eng.store.all("pots")]


# Exports -------------------------------------------------------------------------------------

def exports(eng: Engine, name: str, type_: str, specs: list[str]) -> list[Step]:
    """The steps that export `specs` (`PORT[:HOSTPORT][/PROTO]`) for pot `name` of `type_`, each
    checked now: a bridge type, no host port twice, none that another pot exports."""
    if specs and type_ not in BRIDGES:
        raise UsageError(f"-e: only a pot on a bridge can export ports, not one of -N {type_}")
    held = {(r["host_port"], r["proto"]): r["pot"] for r in eng.store.all("exports")}
    seen: set[tuple[int, str]] = set()
    steps: list[Step] = []
    for text in specs:
        proto, pot_port, host_port = parse(text)
        if host_port is not None:
            key = (host_port, proto)
            if key in seen:
                raise UsageError(f"-e {text}: host port {host_port}/{proto} is given twice")
            owner = held.get(key)
            if owner is not None and owner != name:
                raise Exists(f"host port {host_port}/{proto} is already exported by pot {owner}")
            seen.add(key)
        steps.append(ExportTake(name, proto, pot_port, host_port))
    return steps


def drop_exports(eng: Engine, name: str) -> list[Step]:
    return [ExportDrop(name, r["proto"], r["pot_port"], r["host_port"])
            for r in eng.store.all("exports", order="host_port, proto", pot=name)]


def hosts_entries(entries: list[str]) -> list[list[str]]:
    """set-hosts' `NAME:IP` entries, checked."""
    out = []
    for text in entries:
        name, colon, ip = text.partition(":")
        if not colon:
            raise UsageError(f"-H {names.short(text)}: expected NAME:IP")
        if not _HOSTNAME.fullmatch(name):
            raise UsageError(f"-H {names.short(text)}: invalid host name {names.short(name)}")
        out.append([name, str(_ip("-H", ip))])
    return out

"""`RuntimeSpec.net` from the state store: the contract in `hosts.base.NetSpec`."""

from __future__ import annotations

import hashlib
import os
from ipaddress import ip_address
from typing import Any

from ladle.engine import networks
from ladle.engine.core import Engine
from ladle.engine.potnet import BRIDGES, network_of
from ladle.errors import UsageError
from ladle.hosts.base import NetAddress, NetAlias, NetPort, NetSpec
from ladle.net import ipam

PUBLIC_BRIDGE = "ldbr0"


def veth(eng: Engine, name: str) -> str:
    """The host side of the pot's veth pair: `ldv` and 12 hex digits, unique per state root and
    pot (two roots on one host never share an interface name)."""
    digest = hashlib.sha256(f"{os.path.realpath(eng.root)}\0{name}".encode()).hexdigest()
    return f"ldv{digest[:12]}"


def bridge(eng: Engine, network: str) -> str:
    """`ldbr0` for the public network; `ldbr<N>` for a private bridge, N its IPv4 block's offset
    in the configured network in /30s (blocks never overlap, so N is unique; at most 10 digits)."""
    if network == ipam.PUBLIC:
        return PUBLIC_BRIDGE
    net4 = ipam.parse4(networks.row(eng, network)["ipv4"])
    parent = ipam.parse4(eng.cfg.network)
    if not net4.subnet_of(parent):
        raise UsageError(f"private bridge {network} ({net4}) is outside the configured network {parent}: "
                         "destroy it and create it again")
    return f"ldbr{(int(net4.network_address) - int(parent.network_address)) >> 2}"


def addresses(eng: Engine, pot: dict[str, Any]) -> dict[int, NetAddress]:
    """The pot's leases on its network, by family, with the network's prefix length and gateway."""
    network = network_of(pot)
    if network is None:
        return {}
    r = networks.row(eng, network)
    out: dict[int, NetAddress] = {}
    for x in eng.store.all("leases", network=network, pot=pot["name"]):
        net = ipam.parse(r[f"ipv{x['family']}"])
        out[x["family"]] = NetAddress(address=x["address"], prefixlen=net.prefixlen, gateway=str(ipam.gateway(net)))
    return out


def ports(eng: Engine, name: str) -> list[NetPort]:
    return [NetPort(proto=r["proto"], pot_port=r["pot_port"], host_port=r["host_port"])
            for r in eng.store.all("exports", order="host_port, proto", pot=name)]


def hosts(eng: Engine, pot: dict[str, Any]) -> str | None:
    """The pot's /etc/hosts: localhost with its name, every pot with an address on its network
    (itself too), then its own set-hosts entries; None with attribute no-etc-hosts."""
    if pot["attrs"].get("no-etc-hosts") == "YES":
        return None
    name = pot["name"]
    lines = [f"127.0.0.1 localhost {name}", f"::1 localhost {name}"]
    network = network_of(pot)
    if network is not None:
        held = eng.store.all("leases", order="pot, family", network=network)
        lines += [f"{x['address']} {x['pot']}" for x in held]
    lines += [f"{ip} {host}" for host, ip in pot["net"].get("hosts", [])]
    return "\n".join(lines) + "\n"


def resolv(pot: dict[str, Any]) -> str | None:
    servers = pot["net"].get("dns") or []
    return "".join(f"nameserver {s}\n" for s in servers) or None


def build(eng: Engine, pot: dict[str, Any]) -> NetSpec:
    """The pot's NetSpec: empty for inherit and none; for alias its addresses, hosts and resolv;
    for the bridge types every key."""
    type_ = pot["network"]
    if type_ == "alias":
        aliases = [NetAlias(interface=a["interface"], address=a["address"],
                            prefixlen=32 if ip_address(a["address"]).version == 4 else 128)
                   for a in pot["net"].get("aliases", [])]
        return NetSpec(type=type_, aliases=aliases, hosts=hosts(eng, pot), resolv=resolv(pot))
    if type_ not in BRIDGES:
        return NetSpec()
    network = str(network_of(pot))
    held = addresses(eng, pot)
    return NetSpec(type=type_, network=network, bridge=bridge(eng, network), veth=veth(eng, pot["name"]),
                   ipv4=held.get(4), ipv6=held.get(6), nat=[eng.cfg.network, networks.prefix6(eng)],
                   aliases=[], ports=ports(eng, pot["name"]), hosts=hosts(eng, pot), resolv=resolv(pot))

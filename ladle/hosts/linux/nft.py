"""ladle's own nftables table, `inet ladle`, driven through the `nft` command (`nft -f -`, `nft -j`).

The rules are fixed; what pots add and remove at start and stop are set and map elements: the NAT
networks (`nat4`, `nat6`), the bridges whose pots may talk among themselves (`intra`) and the port
exports (`ports4`, `ports6`: protocol . host port to pot address . pot port). So no rule outlives
its pot, and the table goes when the last bridge does.

- raw prerouting (before conntrack): a packet from a bridge or a pot's veth for 127.0.0.0/8 or ::1
  is dropped. route_localnet, which DNAT from 127.0.0.1 needs, would otherwise let a pot reach the
  host's loopback services (CVE-2020-8558).
- nat prerouting and output: a port export is a DNAT of traffic for any local address (127.0.0.1,
  the host's addresses, the gateways: other hosts, the host itself and other pots).
- nat postrouting: sources in the NAT networks leaving for outside them are masqueraded (the
  upstream sees the host's address); DNATed traffic from loopback or from a pot into a bridge is
  masqueraded too, so the reply comes back through the host (127.0.0.1 and hairpin).
- forward: traffic between two different ladle bridges is dropped unless it is an export (DNAT).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from ladle.errors import HostError

TABLE = "ladle"
FAMILY = "inet"

RULESET = """\
table inet ladle {
  set nat4 { type ipv4_addr; flags interval; }
  set nat6 { type ipv6_addr; flags interval; }
  set intra { type ifname . ifname; }
  map ports4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
  map ports6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
  chain raw {
    type filter hook prerouting priority raw; policy accept;
    iifname "ldbr*" ip daddr 127.0.0.0/8 counter drop
    iifname "ldv*" ip daddr 127.0.0.0/8 counter drop
    iifname "ldbr*" ip6 daddr ::1 counter drop
    iifname "ldv*" ip6 daddr ::1 counter drop
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local dnat ip addr . port to meta l4proto . th dport map @ports4
    fib daddr type local dnat ip6 addr . port to meta l4proto . th dport map @ports6
  }
  chain output {
    type nat hook output priority -100; policy accept;
    fib daddr type local dnat ip addr . port to meta l4proto . th dport map @ports4
    fib daddr type local dnat ip6 addr . port to meta l4proto . th dport map @ports6
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat ip saddr 127.0.0.0/8 counter masquerade
    ct status dnat oifname "ldbr*" ip saddr @nat4 counter masquerade
    ct status dnat oifname "ldbr*" ip6 saddr @nat6 counter masquerade
    ct status dnat oifname "ldv*" ip saddr @nat4 counter counter masquerade
    ct status dnat oifname "ldv*" ip6 saddr @nat6 counter counter masquerade
    ip saddr @nat4 ip daddr != @nat4 counter masquerade
    ip6 saddr @nat6 ip6 daddr != @nat6 counter masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "ldbr*" oifname "ldbr*" ct status dnat counter accept
    iifname "ldbr*" oifname "ldbr*" iifname . oifname != @intra counter drop
  }
}
"""


def nft(args: list[str], script: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(["nft", *args], input=script, capture_output=True, text=True)
    except FileNotFoundError:
        raise HostError("nft not found: bridge networking needs nftables (on Debian: apt-get install nftables)"
                        ) from None
    if check and proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["failed"])[0]
        raise HostError(f"nft {' '.join(args)}: {first}")
    return proc


def exists() -> bool:
    return nft(["list", "table", FAMILY, TABLE], check=False).returncode == 0


def ensure() -> bool:
    """The table with its rules; True when it was made now."""
    if exists():
        return False
    proc = nft(["-f", "-"], RULESET, check=False)
    if proc.returncode != 0:
        err = proc.stderr.strip()
        why = "this kernel lacks a needed nftables feature" if "Operation not supported" in err or \
            "No such file" in err else (err.splitlines() or ["failed"])[0]
        raise HostError(f"cannot create nftables table inet ladle: {why}")
    return True


def drop_table() -> None:
    if exists():
        nft(["delete", "table", FAMILY, TABLE])


def port_key(port: dict[str, Any]) -> str:
    return f"{port['proto']} . {int(port['host_port'])}"


def port_element(port: dict[str, Any], address: str) -> str:
    return f"{port_key(port)} : {address} . {int(port['pot_port'])}"


def ports_map(address: str) -> str:
    return "ports6" if ":" in address else "ports4"


def add_lines(net: dict[str, Any]) -> list[str]:
    """The `nft add element` lines of a pot: its NAT networks, its bridge, its exports."""
    lines = []
    for prefix in net.get("nat") or []:
        lines.append(f"add element inet ladle {'nat6' if ':' in prefix else 'nat4'} {{ {prefix} }}")
    bridge = net["bridge"]
    lines.append(f'add element inet ladle intra {{ "{bridge}" . "{bridge}" }}')
    for fam in ("ipv4", "ipv6"):
        addr = net.get(fam)
        if addr:
            for port in net.get("ports") or []:
                lines.append(f"add element inet ladle {ports_map(addr['address'])} "
                             f"{{ {port_element(port, addr['address'])} }}")
    return lines


def add(net: dict[str, Any]) -> None:
    nft(["-f", "-"], "\n".join(add_lines(net)) + "\n")


def _elements(name: str) -> list[Any]:
    proc = nft(["-j", "list", "map" if name.startswith("ports") else "set", FAMILY, TABLE, name], check=False)
    if proc.returncode != 0:
        return []
    for item in json.loads(proc.stdout).get("nftables", []):
        body = item.get("map") or item.get("set")
        if body:
            return list(body.get("elem", []))
    return []


def _port_targets(name: str) -> dict[tuple[str, int], str]:
    """The exports in map `name`: (proto, host port) -> pot address."""
    found = {}
    for elem in _elements(name):
        try:
            key, value = elem
            proto, port = key["concat"]
            found[(str(proto), int(port))] = str(value["concat"][0])
        except (KeyError, TypeError, ValueError):
            continue
    return found


def remove_lines(net: dict[str, Any]) -> list[str]:
    """The `nft delete element` lines of a pot's exports that are still there and still its own."""
    lines = []
    for fam in ("ipv4", "ipv6"):
        addr = net.get(fam)
        if not addr or not net.get("ports"):
            continue
        name = ports_map(addr["address"])
        targets = _port_targets(name)
        for port in net["ports"]:
            if targets.get((port["proto"], int(port["host_port"]))) == addr["address"]:
                lines.append(f"delete element inet ladle {name} {{ {port_key(port)} }}")
    return lines


def remove(net: dict[str, Any]) -> None:
    if not exists():
        return
    lines = remove_lines(net)
    if lines:
        nft(["-f", "-"], "\n".join(lines) + "\n")


def drop_bridge(bridge: str) -> None:
    """The bridge is gone: its pots' element of `intra` too."""
    if exists() and any(e == {"concat": [bridge, bridge]} for e in _elements("intra")):
        nft(["delete", "element", FAMILY, TABLE, "intra", f'{{ "{bridge}" . "{bridge}" }}'])

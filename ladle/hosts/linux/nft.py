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

SETS = (("set", "nat4", "type ipv4_addr; flags interval;"), ("set", "nat6", "type ipv6_addr; flags interval;"),
        ("set", "intra", "type ifname . ifname;"),
        ("map", "ports4", "type inet_proto . inet_service : ipv4_addr . inet_service;"),
        ("map", "ports6", "type inet_proto . inet_service : ipv6_addr . inet_service;"))
DNAT = ("fib daddr type local dnat ip addr . port to meta l4proto . th dport map @ports4",
        "fib daddr type local dnat ip6 addr . port to meta l4proto . th dport map @ports6")
CHAINS = (
    ("raw", "type filter hook prerouting priority raw; policy accept;",
     ('iifname "ldbr*" ip daddr 127.0.0.0/8 counter drop', 'iifname "ldv*" ip daddr 127.0.0.0/8 counter drop',
      'iifname "ldbr*" ip6 daddr ::1 counter drop', 'iifname "ldv*" ip6 daddr ::1 counter drop')),
    ("prerouting", "type nat hook prerouting priority dstnat; policy accept;", DNAT),
    ("output", "type nat hook output priority -100; policy accept;", DNAT),
    ("postrouting", "type nat hook postrouting priority srcnat; policy accept;",
     ("ct status dnat ip saddr 127.0.0.0/8 counter masquerade",
      'ct status dnat oifname "ldbr*" ip saddr @nat4 counter masquerade',
      'ct status dnat oifname "ldbr*" ip6 saddr @nat6 counter masquerade',
      'ct status dnat oifname "ldv*" ip saddr @nat4 counter masquerade',
      'ct status dnat oifname "ldv*" ip6 saddr @nat6 counter masquerade',
      "ip saddr @nat4 ip daddr != @nat4 counter masquerade",
      "ip6 saddr @nat6 ip6 daddr != @nat6 counter masquerade")),
    ("forward", "type filter hook forward priority filter; policy accept;",
     ('iifname "ldbr*" oifname "ldbr*" ct status dnat counter accept',
      'iifname "ldbr*" oifname "ldbr*" iifname . oifname != @intra counter drop')),
)


def ruleset_lines() -> list[str]:
    """The table, its sets and chains, made if missing and their rules written anew: the same lines
    work on a host without the table and on one where other pots use it (sets keep their
    elements), in one transaction."""
    lines = ["add table inet ladle"]
    lines += [f"add {kind} inet ladle {name} {{ {spec} }}" for kind, name, spec in SETS]
    for name, hook, rules in CHAINS:
        lines += [f"add chain inet ladle {name} {{ {hook} }}", f"flush chain inet ladle {name}"]
        lines += [f"add rule inet ladle {name} {rule}" for rule in rules]
    return lines


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


def _failed(proc: subprocess.CompletedProcess[str]) -> HostError:
    err = proc.stderr.strip()
    why = "this kernel lacks a needed nftables feature" if "Operation not supported" in err or \
        "No such file" in err else (err.splitlines() or ["failed"])[0]
    return HostError(f"cannot set up nftables table inet ladle: {why}")


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
    """The table (made or its rules renewed) and the pot's elements, in one `nft -f -`."""
    proc = nft(["-f", "-"], "\n".join([*ruleset_lines(), *add_lines(net)]) + "\n", check=False)
    if proc.returncode != 0:
        raise _failed(proc)


def _table() -> dict[str, list[Any]] | None:
    """The elements of the table's sets and maps (None: no table)."""
    proc = nft(["-j", "list", "table", FAMILY, TABLE], check=False)
    if proc.returncode != 0:
        return None
    found: dict[str, list[Any]] = {}
    for item in json.loads(proc.stdout).get("nftables", []):
        body = item.get("map") or item.get("set")
        if body:
            found[str(body.get("name"))] = list(body.get("elem", []))
    return found


def _port_targets(elements: list[Any]) -> dict[tuple[str, int], str]:
    """The exports of a ports map: (proto, host port) -> pot address."""
    found = {}
    for elem in elements:
        try:
            key, value = elem
            proto, port = key["concat"]
            found[(str(proto), int(port))] = str(value["concat"][0])
        except (KeyError, TypeError, ValueError):
            continue
    return found


def remove_lines(net: dict[str, Any], table: dict[str, list[Any]], bridge_gone: bool, last: bool) -> list[str]:
    """What removes a pot's elements that are still there and still its own (its bridge's too
    when the bridge is gone), or the whole table when no ladle bridge is left."""
    if last:
        return ["delete table inet ladle"]
    lines = []
    for fam in ("ipv4", "ipv6"):
        addr = net.get(fam)
        if not addr or not net.get("ports"):
            continue
        name = ports_map(addr["address"])
        targets = _port_targets(table.get(name, []))
        for port in net["ports"]:
            if targets.get((port["proto"], int(port["host_port"]))) == addr["address"]:
                lines.append(f"delete element inet ladle {name} {{ {port_key(port)} }}")
    bridge = net["bridge"]
    if bridge_gone and {"concat": [bridge, bridge]} in table.get("intra", []):
        lines.append(f'delete element inet ladle intra {{ "{bridge}" . "{bridge}" }}')
    return lines


def remove(net: dict[str, Any], bridge_gone: bool, last: bool) -> None:
    table = _table()
    if table is None:
        return
    lines = remove_lines(net, table, bridge_gone, last)
    if lines:
        nft(["-f", "-"], "\n".join(lines) + "\n")

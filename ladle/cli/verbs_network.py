"""Verbs for networks: list and show them with their leases, create and destroy private bridges."""

from __future__ import annotations

import argparse

import ladle
from ladle.cli.common import Verbs, change, net_args, pot_opt, verb
from ladle.cli.output import as_json, table


def register(verbs: Verbs) -> None:
    p = verb(verbs, "network", _network, "list the networks (ls), or show one with its leases (show NAME)")
    p.add_argument("action", choices=("ls", "show"), help="ls: every network; show: one network")
    p.add_argument("name", nargs="?", metavar="NAME", help="the network to show (public, or a private bridge)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = verb(verbs, "create-private-bridge", change(lambda c, a: c.create_private_bridge(a.name, a.size, a.net)),
             "create a private bridge: a network of its own, carved out of the IPv4 network", changes=True)
    p.add_argument("-B", dest="name", required=True, metavar="NAME", help="bridge name")
    size = p.add_mutually_exclusive_group()
    size.add_argument("-S", dest="size", type=int, metavar="SIZE", help="how many pots it holds (gateway excluded)")
    size.add_argument("-n", dest="net", metavar="NETWORK", help="its IPv4 network (CIDR) instead of a size")

    p = verb(verbs, "destroy-private-bridge", change(lambda c, a: c.destroy_private_bridge(a.name)),
             "forget a private bridge that no pot uses (also: destroy -B NAME)", changes=True)
    p.add_argument("-B", dest="name", required=True, metavar="NAME", help="bridge name")


    p = verb(verbs, "set-network", change(lambda c, a: c.set_network(a.pot, a.network, addresses=a.addresses,
                                                                 bridge=a.bridge, stack=a.stack)),
             "change a stopped pot's network: its old addresses are released, new ones leased", changes=True)
    pot_opt(p)
    net_args(p, default=None)

    p = verb(verbs, "export-ports", change(lambda c, a: c.export_ports(a.pot, a.ports)),
             "replace the pot's port exports (bridge networks; active while it runs)", changes=True)
    pot_opt(p)
    p.add_argument("-e", dest="ports", action="append", required=True, metavar="PORT[:HOSTPORT][/PROTO]",
                   help="the pot's PORT on the host's HOSTPORT (default: the lowest free of 1024-9999), "
                   "tcp (default) or udp; repeatable")

    p = verb(verbs, "set-hosts", change(lambda c, a: c.set_hosts(a.pot, a.entries)),
             "replace the pot's own /etc/hosts entries (besides the pots on its bridge)", changes=True)
    pot_opt(p)
    p.add_argument("-H", dest="entries", action="append", required=True, metavar="NAME:IP", help="repeatable")


def _network(client: ladle.Client, args: argparse.Namespace) -> None:
    if args.action == "ls":
        if args.name is not None:
            raise ladle.UsageError("network ls takes no NAME (see 'ladle network show NAME')")
        rows = client.networks()
        if args.json:
            as_json(rows)
        else:
            table([{"name": n.name, "kind": n.kind, "ipv4": n.ipv4, "gateway": n.gateway4, "ipv6": n.ipv6,
                    "leases": len(n.leases)} for n in rows], ["name", "kind", "ipv4", "gateway", "ipv6", "leases"])
        return
    if args.name is None:
        raise ladle.UsageError("no network given: network show NAME (see 'ladle network ls')")
    net = client.network(args.name)
    if args.json:
        as_json(net)
        return
    out = [f"{'name:':9} {net.name}", f"{'kind:':9} {net.kind}"]
    for family, prefix, gw in (("ipv4", net.ipv4, net.gateway4), ("ipv6", net.ipv6, net.gateway6)):
        if prefix:
            out.append(f"{family + ':':9} {prefix} (gateway {gw})")
    out += [f"{'lease:':9} {lease.address} {lease.pot}" for lease in net.leases]
    print("\n".join(out))

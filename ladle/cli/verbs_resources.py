"""Verbs for resources: set-rss, get-rss and show (pot's), stats and ps."""

from __future__ import annotations

import argparse
import json
import sys
import time

import ladle
from ladle.cli.common import Verbs, change, pot_arg, pot_name, pot_opt, verb
from ladle.cli.output import as_json, table


def register(verbs: Verbs) -> None:
    p = verb(verbs, "set-rss", change(_set_rss),
             "set a pot's resource limits (at once if it runs; 'none' lifts one)", changes=True)
    pot_opt(p)
    p.add_argument("-C", dest="cpus", metavar="CPUS",
                   help="a CPU count (the least used CPUs at each start) or a list such as 0,2 or 1-3")
    p.add_argument("-M", dest="memory", metavar="SIZE", help="memory, swap included: bytes, or K, M, G")
    p.add_argument("--pids", metavar="N", help="the most processes and threads; 0: no limit "
                   "(default: the configuration's pids_limit, 2048)")
    p.add_argument("--pcpu", metavar="PCT", help="a share of CPU time, in percent of one CPU")

    p = verb(verbs, "get-rss", _get_rss, "a running pot's limits and what it uses now")
    pot_opt(p)
    p.add_argument("-J", "--json", dest="json", action="store_true", help="print pot's JSON (ResourceUsage)")

    p = verb(verbs, "stats", _stats, "CPU, memory and processes of running pots")
    p.add_argument("names", nargs="*", metavar="NAME", help="pots (default: every running one)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--watch", action="store_true", help="refresh every second, like top, until Ctrl-C")

    p = verb(verbs, "show", _show, "limits, usage, addresses and exports of running pots (pot's show)")
    p.add_argument("-p", dest="pot", metavar="POT", help="only this pot (it must run)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = verb(verbs, "ps", _ps, "the processes of a running pot")
    pot_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")


def _set_rss(client: ladle.Client, args: argparse.Namespace) -> ladle.Change:
    return client.set_rss(args.pot, cpus=args.cpus, memory=args.memory, pids=args.pids, pcpu=args.pcpu)


def size(n: int | None) -> str:
    """Bytes for people: 52.4M."""
    if n is None:
        return "-"
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f}{unit}"
    return f"{n}B"


def _get_rss(client: ladle.Client, args: argparse.Namespace) -> None:
    r = client.get_rss(args.pot)
    if args.json:
        print(json.dumps(r.pot_json()))
        return
    print("\n".join([
        f"{'memory:':8} {size(r.memory)} of {size(r.memory_limit) if r.memory_limit else 'no limit'}"
        f" (swap {size(r.swap)})" + (f", {r.oom_kills} OOM kill(s)" if r.oom_kills else ""),
        f"{'pids:':8} {r.pids} of {r.pids_limit or 'no limit'}",
        f"{'cpu:':8} {r.cpu_percent:.1f}% of {f'{r.pcpu_limit}%' if r.pcpu_limit else 'no limit'}"
        f", {r.cpu_seconds:.2f}s so far",
        f"{'cpus:':8} {r.cpus or 'all'}"]))


def _show(client: ladle.Client, args: argparse.Namespace) -> None:
    got = client.show(args.pot)
    if args.json:
        as_json(got)
        return
    for s in got:
        r = s.resources
        limits = [f"memory {size(r.memory_limit)}" if r.memory_limit else "",
                  f"pids {r.pids_limit}" if r.pids_limit else "",
                  f"pcpu {r.pcpu_limit}%" if r.pcpu_limit else "", f"cpus {r.cpus}" if r.cpus else ""]
        print("\n".join([
            f"pot {s.name}",
            f"  {'limits:':11} {', '.join(x for x in limits if x) or 'none'}",
            f"  {'usage:':11} memory {size(r.memory)}, pids {r.pids}, cpu {r.cpu_percent:.1f}%"
            + (f", {r.oom_kills} OOM kill(s)" if r.oom_kills else ""),
            f"  {'addresses:':11} {' '.join(s.addresses) or '-'}",
            f"  {'exports:':11} {' '.join(p.text for p in s.ports) or '-'}"]))


def _stats_rows(stats: list[ladle.PotStats]) -> list[dict[str, str]]:
    return [{"name": s.name, "cpu %": f"{s.cpu_percent:.1f}", "memory": size(s.memory),
             "limit": size(s.memory_limit), "pids": f"{s.pids}/{s.pids_limit or '-'}"} for s in stats]


def _stats(client: ladle.Client, args: argparse.Namespace) -> int:
    if not args.watch:
        got = client.stats(args.names)
        if args.json:
            as_json(got)
        else:
            table(_stats_rows(got), ["name", "cpu %", "memory", "limit", "pids"])
        return 0
    try:
        while True:
            got = client.stats(args.names, interval=1.0)
            if args.json:
                as_json(got)
            else:
                sys.stdout.write("\x1b[H\x1b[2J" + time.strftime("%H:%M:%S") + "\n")
                table(_stats_rows(got), ["name", "cpu %", "memory", "limit", "pids"])
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0


def _ps(client: ladle.Client, args: argparse.Namespace) -> None:
    got = client.ps(pot_name(args))
    if args.json:
        as_json(got)
        return
    table(got, ["pid", "host_pid", "user", "command"])

"""Verbs for the host, bases and pots (pot's names and flags)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import replace
from typing import Any

import ladle
from ladle.cli.common import Verbs, change, net_args, pot_arg, pot_name, pot_opt, verb
from ladle.cli.output import as_json, names, show_change, table


def register(verbs: Verbs) -> None:
    p = verb(verbs, "init", change(lambda c, a: c.init(a.storage, a.dataset, a.force)),
             "set up the state root, its database and the storage backend (idempotent)", changes=True)
    p.add_argument("--storage", choices=("dir", "zfs"), default="dir", help="storage backend (default: dir)")
    p.add_argument("--dataset", metavar="POOL/PATH", help="ZFS dataset for --storage zfs")
    p.add_argument("--force", action="store_true",
                   help="take over a ZFS dataset that another state root owns (its mountpoints move here)")

    p = verb(verbs, "create-base", change(lambda c, a: c.create_base(a.release, a.name, a.from_tar)),
             "create a base: the tree pots are made from", changes=True)
    p.add_argument("-r", dest="release", required=True, metavar="RELEASE",
                   help="FreeBSD release (e.g. 14.2) or, on Linux, 'busybox'; a label with --from-tar")
    p.add_argument("-b", dest="name", metavar="NAME", help="base name (default: the release)")
    p.add_argument("--from-tar", metavar="FILE", help="import a root file system tarball instead")

    p = verb(verbs, "bases", _bases, "list bases")
    _listing(p)

    p = verb(verbs, "create", change(_create), "create a pot", changes=True)
    p.add_argument("-p", dest="name", required=True, metavar="NAME", help="pot name")
    p.add_argument("-b", dest="base", metavar="BASE", help="base to build on")
    p.add_argument("-t", dest="type", choices=("single", "multi"), default="multi", help="pot type (default: multi)")
    p.add_argument("-l", dest="level", type=int, choices=(0, 1, 2), help="level of a multi pot (default 1)")
    p.add_argument("-P", dest="potbase", metavar="POT", help="reference pot (level 2: its snapshot; else a copy)")
    p.add_argument("-c", dest="cmd", metavar="CMD", help="the pot's command (default 'sh /etc/rc'; with --image:"
                   " the arguments replacing its Cmd)")
    p.add_argument("--image", dest="image", metavar="REF", help="make the pot from an image (pulled if missing)"
                   " instead of a base: its layers, command, environment, user and working directory")
    p.add_argument("--insecure", action="store_true", help="pull the image over plain HTTP from a remote registry")
    net_args(p)
    p.add_argument("-d", dest="dns", action="append", metavar="SERVER",
                   help="a DNS server for its /etc/resolv.conf (repeatable; default: the host's resolv.conf)")
    p.add_argument("-f", dest="flavours", action="append", metavar="FLAVOUR",
                   help="apply a flavour: FLAVOUR (ladle commands for the pot) and/or FLAVOUR.sh (a script "
                   "run inside it), from flavours_dir (default /etc/ladle/flavours) or a path (repeatable)")

    p = verb(verbs, "destroy", change(_destroy), "destroy a pot, a base, an fscomp or a private bridge", changes=True)
    p.add_argument("-p", dest="pot", metavar="POT")
    p.add_argument("-b", dest="base", metavar="BASE")
    p.add_argument("-f", dest="fscomp", metavar="FSCOMP")
    p.add_argument("-B", dest="bridge", metavar="BRIDGE", help="a private bridge no pot uses")
    p.add_argument("-r", dest="recursive", action="store_true", help="also destroy what depends on it")
    p.add_argument("-F", dest="force", action="store_true", help="stop running pots first")

    p = verb(verbs, "ls", _ls, "list pots", aliases=("list",))
    _listing(p)

    p = verb(verbs, "info", _info, "show a pot: type, level, status, command, attributes, mounts, storage")
    pot_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = verb(verbs, "clone", change(lambda c, a: c.clone(a.new, a.source, a.snap, a.addresses)),
             "create pot NEW as a clone of a snapshot of pot SOURCE", changes=True)
    p.add_argument("-p", dest="new", required=True, metavar="NEW")
    p.add_argument("-P", dest="source", required=True, metavar="SOURCE")
    p.add_argument("-s", dest="snap", metavar="SNAPSHOT", help="snapshot of SOURCE (default: its latest)")
    p.add_argument("-i", dest="addresses", action="append", metavar="ADDR",
                   help="its addresses, as create's (default: new leases; required for an alias pot)")

    p = verb(verbs, "rename", change(lambda c, a: c.rename(a.old, a.new)),
             "rename a stopped pot (its storage, mounts and the pots that refer to it)", changes=True)
    p.add_argument("-p", dest="old", required=True, metavar="OLD")
    p.add_argument("-n", dest="new", required=True, metavar="NEW")

    p = verb(verbs, "set-cmd", change(lambda c, a: c.set_cmd(a.pot, a.cmd)),
             "set the pot's command (a shell command line, like pot's)", changes=True)
    pot_opt(p)
    p.add_argument("-c", dest="cmd", required=True, metavar="CMD")

    p = verb(verbs, "set-env", change(_set_env), "replace the pot's environment variables", changes=True)
    pot_opt(p)
    p.add_argument("-E", dest="env", action="append", required=True, metavar="KEY=VALUE", help="repeatable")

    p = verb(verbs, "set-attr", change(lambda c, a: c.set_attr(a.pot, a.attr, a.value)),
             "set an attribute (persistent, procfs, fdescfs, mlock, sysvipc, stop_timeout, ...)", changes=True)
    pot_opt(p)
    p.add_argument("-A", dest="attr", required=True, metavar="ATTR")
    p.add_argument("-V", dest="value", required=True, metavar="VALUE")

    p = verb(verbs, "get-attr", _get_attr, "print an attribute")
    pot_opt(p)
    p.add_argument("-A", dest="attr", required=True, metavar="ATTR")
    p.add_argument("-q", dest="quiet", action="store_true", help="the bare value")

    p = verb(verbs, "gc", _gc, "finish or roll back interrupted operations; clean up after crashed pots and leaks",
             changes=True)
    p.add_argument("--force", action="store_true", help="drop operations whose repair failed")


def _listing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-q", dest="quiet", action="store_true", help="names only")


def _bases(client: ladle.Client, args: argparse.Namespace) -> None:
    rows = client.bases()
    if args.json:
        as_json(rows)
    elif args.quiet:
        names(rows)
    else:
        table(rows, ["name", "release", "pots", "source"])


def _create(client: ladle.Client, args: argparse.Namespace) -> ladle.Change:
    return client.create(args.name, args.base, type=args.type, level=args.level, potbase=args.potbase,
                         cmd=args.cmd, network=args.network, addresses=args.addresses, bridge=args.bridge,
                         stack=args.stack, dns=args.dns, image=args.image, insecure=args.insecure,
                         flavours=args.flavours)


def _destroy(client: ladle.Client, args: argparse.Namespace) -> ladle.Change:
    if sum(x is not None for x in (args.pot, args.base, args.fscomp, args.bridge)) != 1:
        raise ladle.UsageError("give exactly one of -p POT, -b BASE, -f FSCOMP or -B BRIDGE")
    if args.bridge is not None:
        return client.destroy_private_bridge(args.bridge)
    if args.pot:
        return client.destroy(args.pot, args.recursive, args.force)
    if args.base:
        return client.destroy_base(args.base, args.recursive, args.force)
    return client.destroy_fscomp(args.fscomp)


def _ls(client: ladle.Client, args: argparse.Namespace) -> None:
    rows = client.pots()
    if args.json:
        as_json(rows)
    elif args.quiet:
        names(rows)
    else:
        table([{**dataclasses.asdict(r), "addresses": " ".join(r.addresses), "ports": " ".join(r.ports),
                "status": f"{r.status} ({r.health})" if r.health else r.status}
               for r in rows], ["name", "status", "base", "type", "level", "network", "addresses", "ports"])


def _info(client: ladle.Client, args: argparse.Namespace) -> None:
    data = client.info(pot_name(args))
    if args.json:
        as_json(data)
        return
    out = [f"{key + ':':10} {'' if getattr(data, key) is None else getattr(data, key)}"
           for key in ("name", "status", "type", "level", "base", "potbase", "network", "cmd")]
    out += _net_lines(data)
    out += _life_lines(data)
    out += _image_lines(data.image)
    out.append(f"{'storage:':10} {data.storage.backend} {data.storage.path}")
    out += [f"{'env:':10} {k}={v}" for k, v in data.env.items()]
    out.append("attributes: " + " ".join(f"{k}={v}" for k, v in data.attrs.items()))
    out += [f"{'mount:':10} {m.mountpoint} <- {m.kind} {m.source}{' (ro)' if m.ro else ''}" for m in data.mounts]
    if data.snapshots:
        out.append(f"{'snapshots:':10} {' '.join(data.snapshots)}")
    print("\n".join(out))


def _life_lines(data: ladle.PotInfo) -> list[str]:
    """info's life-cycle part: health, restart policy and count, dependencies, hooks."""
    out = []
    if data.healthcheck:
        out.append(f"{'health:':10} {data.health or '-'} ({data.healthcheck['cmd']})")
    if data.restart != "no" or data.restarts:
        out.append(f"{'restart:':10} {data.restart}, {data.restarts} restart{'s' if data.restarts != 1 else ''}")
    if data.depends:
        out.append(f"{'depends:':10} {' '.join(data.depends)}")
    out += [f"{'hook:':10} {kind} {path}" for kind, path in data.hooks.items()]
    return out


def _image_lines(image: dict[str, Any]) -> list[str]:
    """info's image part: which image, and what of its config the pot uses."""
    if not image:
        return []
    out = [f"{'image:':10} {image['ref']} ({image['manifest']})"]
    out += [f"{key + ':':10} {image[key]}" for key in ("user", "workdir", "stop_signal") if image.get(key)]
    out += [f"{'exposes:':10} {p}" for p in image.get("exposed_ports", [])]
    out += [f"{'volume:':10} {v}" for v in image.get("volumes", [])]
    return out


def _net_lines(data: ladle.PotInfo) -> list[str]:
    """info's network part: the stack, the bridge, addresses, exports, DNS servers and hosts entries."""
    out = [f"{'stack:':10} {data.stack}"]
    if data.network_name:
        out.append(f"{'bridge:':10} {data.bridge} (network {data.network_name})")
    out += [f"{'address:':10} {a}" for a in (data.aliases or data.addresses)]
    out += [f"{'export:':10} {p.text}" for p in data.ports]
    out += [f"{'dns:':10} {s}" for s in data.dns]
    out += [f"{'hosts:':10} {h}" for h in data.hosts]
    return out


def _set_env(client: ladle.Client, args: argparse.Namespace) -> ladle.Change:
    env = {}
    for pair in args.env:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ladle.UsageError(f"invalid environment entry {pair!r}: expected KEY=value")
        env[key] = value
    return client.set_env(args.pot, env)


def _get_attr(client: ladle.Client, args: argparse.Namespace) -> None:
    value = client.get_attr(args.pot, args.attr)
    print(value if args.quiet else f"{args.attr}: {value}")


def _gc(client: ladle.Client, args: argparse.Namespace) -> None:
    done = client.gc(force=args.force)
    show_change(done if done.dry_run or done.message else replace(done, message="nothing to clean up"))

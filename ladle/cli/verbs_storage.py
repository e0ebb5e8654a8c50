"""Verbs for fscomps, mounts, copies and snapshots."""

from __future__ import annotations

import argparse

import ladle
from ladle.cli.common import Parser, Verbs, change, pot_opt, verb
from ladle.cli.output import as_json, table


def register(verbs: Verbs) -> None:
    p = verb(verbs, "create-fscomp", change(lambda c, a: c.create_fscomp(a.name)),
             "create a file-system component (a dataset or directory to mount into pots)", changes=True)
    p.add_argument("-f", dest="name", required=True, metavar="NAME")

    p = verb(verbs, "fscomps", _fscomps, "list fscomps")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = verb(verbs, "clone-fscomp", change(lambda c, a: c.clone_fscomp(a.source, a.new, a.snap)),
             "create fscomp NEW as a clone of a snapshot of SOURCE", changes=True)
    p.add_argument("-F", dest="source", required=True, metavar="SOURCE")
    p.add_argument("-f", dest="new", required=True, metavar="NEW")
    p.add_argument("-s", dest="snap", metavar="SNAPSHOT", help="snapshot of SOURCE (default: its latest)")

    p = verb(verbs, "add-fscomp", change(lambda c, a: c.add_fscomp(a.pot, a.fscomp, a.mountpoint, a.ro)),
             "mount an fscomp into a pot (at once if it runs, and at every start)", changes=True)
    pot_opt(p)
    p.add_argument("-f", dest="fscomp", required=True, metavar="FSCOMP")
    _mountpoint(p)

    p = verb(verbs, "mount-in", change(lambda c, a: c.mount_in(a.pot, a.hostdir, a.mountpoint, a.ro)),
             "mount a host directory into a pot (at once if it runs, and at every start)", changes=True)
    pot_opt(p)
    p.add_argument("-d", dest="hostdir", required=True, metavar="HOSTDIR")
    _mountpoint(p)

    p = verb(verbs, "mount-out", change(lambda c, a: c.mount_out(a.pot, a.mountpoint)),
             "remove a mount (fscomp or host directory) from a pot", changes=True)
    pot_opt(p)
    p.add_argument("-m", dest="mountpoint", required=True, metavar="PATH")

    p = verb(verbs, "copy-in", change(lambda c, a: c.copy_in(a.pot, a.source, a.dest, a.create)),
             "copy a host file or directory into a pot; never follows a symlink out of the pot", changes=True)
    pot_opt(p)
    p.add_argument("-s", dest="source", required=True, metavar="HOSTPATH", help="host file or directory")
    p.add_argument("-d", dest="dest", required=True, metavar="PATH", help="destination inside the pot")
    p.add_argument("-c", dest="create", action="store_true", help="create missing parent directories in the pot")

    p = verb(verbs, "copy-out", change(lambda c, a: c.copy_out(a.pot, a.source, a.dest, a.keep_setuid)),
             "copy a file or directory out of a pot; never follows a symlink out of the pot", changes=True)
    pot_opt(p)
    p.add_argument("-s", dest="source", required=True, metavar="PATH", help="file or directory inside the pot")
    p.add_argument("-d", dest="dest", required=True, metavar="HOSTDIR", help="existing host directory")
    p.add_argument("-k", "--keep-setuid", dest="keep_setuid", action="store_true",
                   help="keep setuid and setgid bits (dropped by default)")

    p = verb(verbs, "snapshot", change(lambda c, a: c.snapshot(a.pot, a.fscomp, a.name)),
             "take a snapshot of a stopped pot (of a level 0 pot: its base's) or of an fscomp", changes=True,
             aliases=("snap",))
    _target(p)
    p.add_argument("-n", dest="name", metavar="NAME", help="snapshot name (default: the Unix time, like pot)")

    p = verb(verbs, "rollback", change(lambda c, a: c.rollback(a.pot, a.fscomp, a.snap, a.force)),
             "roll a stopped pot or an fscomp back to a snapshot", changes=True, aliases=("revert",))
    _target(p)
    p.add_argument("-s", dest="snap", metavar="SNAPSHOT", help="default: the latest; later ones are destroyed")
    p.add_argument("-F", dest="force", action="store_true",
                   help="stop the running pots that use it, and start them again afterwards")

    p = verb(verbs, "snapshots", _snapshots, "list the snapshots of a pot or an fscomp, oldest first")
    _target(p)

    p = verb(verbs, "promote", change(lambda c, a: c.promote(a.pot, a.fscomp)),
             "make a clone independent of the snapshot it was cloned from", changes=True)
    _target(p)

    p = verb(verbs, "purge-snapshots", change(_purge), "remove old snapshots", changes=True)
    _target(p)
    keep = p.add_mutually_exclusive_group()  # '-a -k 5' would remove the five too
    keep.add_argument("-k", dest="keep", type=int, help="how many of the newest to keep (default 1)")
    keep.add_argument("-a", dest="all", action="store_true", help="remove all, the latest too")


def _mountpoint(p: Parser) -> None:
    p.add_argument("-m", dest="mountpoint", required=True, metavar="PATH", help="absolute path inside the pot")
    p.add_argument("--ro", "-r", dest="ro", action="store_true", help="read-only")


def _target(p: Parser) -> None:
    p.add_argument("-p", dest="pot", metavar="POT")
    p.add_argument("-f", dest="fscomp", metavar="FSCOMP")


def _fscomps(client: ladle.Client, args: argparse.Namespace) -> None:
    rows = client.fscomps()
    if args.json:
        as_json(rows)
    else:
        table([{"name": r.name, "pots": ",".join(r.pots), "path": r.path} for r in rows], ["name", "pots", "path"])


def _snapshots(client: ladle.Client, args: argparse.Namespace) -> None:
    for s in client.snapshots(args.pot, args.fscomp):
        print(s)


def _purge(client: ladle.Client, args: argparse.Namespace) -> ladle.Change:
    return client.purge_snapshots(args.pot, args.fscomp, 1 if args.keep is None else args.keep, args.all)

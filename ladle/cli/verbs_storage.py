"""Verbs for fscomps, mounts, copies and snapshots."""

from __future__ import annotations

import click

from ladle.cli.app import changes, cli, engine
from ladle.cli.output import as_json, table


@cli.command("create-fscomp")
@click.option("-f", "name", required=True, metavar="NAME")
@changes
def create_fscomp_cmd(name: str) -> None:
    """Create a file-system component (a dataset or directory to mount into pots)."""
    from ladle.engine.fscomps import create_fscomp
    create_fscomp(engine(), name)


@cli.command("fscomps")
@click.option("--json", "as_json_", is_flag=True, help="Print JSON.")
def fscomps_cmd(as_json_: bool) -> None:
    """List fscomps."""
    from ladle.engine.fscomps import list_fscomps
    rows = list_fscomps(engine(recover=False))
    if as_json_:
        as_json(rows)
    else:
        table([{**r, "pots": ",".join(r["pots"])} for r in rows], ["name", "pots", "path"])


@cli.command("clone-fscomp")
@click.option("-F", "source", required=True, metavar="SOURCE")
@click.option("-f", "new", required=True, metavar="NEW")
@click.option("-s", "snap", metavar="SNAPSHOT", help="Snapshot of SOURCE (default: its latest).")
@changes
def clone_fscomp_cmd(source: str, new: str, snap: str | None) -> None:
    """Create fscomp NEW as a clone of a snapshot of SOURCE."""
    from ladle.engine.fscomps import clone_fscomp
    clone_fscomp(engine(), source, new, snap)


@cli.command("add-fscomp")
@click.option("-p", "pot", required=True, metavar="POT")
@click.option("-f", "fscomp", required=True, metavar="FSCOMP")
@click.option("-m", "mountpoint", required=True, metavar="PATH", help="Absolute path inside the pot.")
@click.option("--ro", "-r", "ro", is_flag=True, help="Read-only.")
@changes
def add_fscomp_cmd(pot: str, fscomp: str, mountpoint: str, ro: bool) -> None:
    """Mount an fscomp into a pot (at once if it runs, and at every start)."""
    from ladle.engine.fscomps import add_mount
    add_mount(engine(), pot, "fscomp", fscomp, mountpoint, ro)


@cli.command("mount-in")
@click.option("-p", "pot", required=True, metavar="POT")
@click.option("-d", "hostdir", required=True, metavar="HOSTDIR")
@click.option("-m", "mountpoint", required=True, metavar="PATH", help="Absolute path inside the pot.")
@click.option("--ro", "-r", "ro", is_flag=True, help="Read-only.")
@changes
def mount_in_cmd(pot: str, hostdir: str, mountpoint: str, ro: bool) -> None:
    """Mount a host directory into a pot (at once if it runs, and at every start)."""
    from ladle.engine.fscomps import add_mount
    add_mount(engine(), pot, "dir", hostdir, mountpoint, ro)


@cli.command("mount-out")
@click.option("-p", "pot", required=True, metavar="POT")
@click.option("-m", "mountpoint", required=True, metavar="PATH")
@changes
def mount_out_cmd(pot: str, mountpoint: str) -> None:
    """Remove a mount (fscomp or host directory) from a pot."""
    from ladle.engine.fscomps import remove_mount
    remove_mount(engine(), pot, mountpoint)


@cli.command("copy-in")
@click.option("-p", "pot", required=True, metavar="POT")
@click.option("-s", "source", required=True, metavar="HOSTPATH", help="Host file or directory.")
@click.option("-d", "dest", required=True, metavar="PATH", help="Destination inside the pot.")
@click.option("-c", "create", is_flag=True, help="Create missing parent directories in the pot.")
@changes
def copy_in_cmd(pot: str, source: str, dest: str, create: bool) -> None:
    """Copy a host file or directory into a pot; never follows a symlink out of the pot."""
    from ladle.engine.fscomps import copy
    copy(engine(), pot, "in", source, dest, create)


@cli.command("copy-out")
@click.option("-p", "pot", required=True, metavar="POT")
@click.option("-s", "source", required=True, metavar="PATH", help="File or directory inside the pot.")
@click.option("-d", "dest", required=True, metavar="HOSTDIR", help="Existing host directory.")
@changes
def copy_out_cmd(pot: str, source: str, dest: str) -> None:
    """Copy a file or directory out of a pot; never follows a symlink out of the pot."""
    from ladle.engine.fscomps import copy
    copy(engine(), pot, "out", dest, source, False)


def _target_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option("-f", "fscomp", metavar="FSCOMP")(f)
    return click.option("-p", "pot", metavar="POT")(f)


@cli.command("snapshot")
@_target_options
@click.option("-n", "name", metavar="NAME", help="Snapshot name (default: the Unix time, like pot).")
@changes
def snapshot_cmd(pot: str | None, fscomp: str | None, name: str | None) -> None:
    """Take a snapshot of a stopped pot or of an fscomp."""
    from ladle.engine.snapshots import snapshot
    snapshot(engine(), pot, fscomp, name)


cli.add_command(snapshot_cmd, "snap")


@cli.command("rollback")
@_target_options
@click.option("-s", "snap", metavar="SNAPSHOT", help="Default: the latest; later ones are destroyed.")
@changes
def rollback_cmd(pot: str | None, fscomp: str | None, snap: str | None) -> None:
    """Roll a stopped pot or an fscomp back to a snapshot."""
    from ladle.engine.snapshots import rollback
    rollback(engine(), pot, fscomp, snap)


cli.add_command(rollback_cmd, "revert")


@cli.command("snapshots")
@_target_options
def snapshots_cmd(pot: str | None, fscomp: str | None) -> None:
    """List the snapshots of a pot or an fscomp, oldest first."""
    from ladle.engine.snapshots import list_snapshots
    for s in list_snapshots(engine(recover=False), pot, fscomp):
        click.echo(s)


@cli.command("promote")
@_target_options
@changes
def promote_cmd(pot: str | None, fscomp: str | None) -> None:
    """Make a clone independent of the snapshot it was cloned from."""
    from ladle.engine.snapshots import promote
    promote(engine(), pot, fscomp)


@cli.command("purge-snapshots")
@_target_options
@click.option("-k", "keep", type=int, default=1, show_default=True, help="How many of the newest to keep.")
@click.option("-a", "everything", is_flag=True, help="Remove all, the latest too.")
@changes
def purge_cmd(pot: str | None, fscomp: str | None, keep: int, everything: bool) -> None:
    """Remove old snapshots."""
    from ladle.engine.snapshots import purge
    purge(engine(), pot, fscomp, keep, everything)

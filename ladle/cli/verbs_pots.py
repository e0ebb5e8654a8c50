"""Verbs for the host, bases and pots (pot's names and flags)."""

from __future__ import annotations

import click

from ladle.cli.app import changes, cli, engine
from ladle.cli.output import as_json, table
from ladle.errors import UsageError


@cli.command("init")
@click.option("--storage", type=click.Choice(["dir", "zfs"]), default="dir", show_default=True)
@click.option("--dataset", metavar="POOL/PATH", help="ZFS dataset for --storage zfs.")
@changes
def init_cmd(storage: str, dataset: str | None) -> None:
    """Set up the state root, its database and the storage backend (idempotent)."""
    from ladle.engine.setup import init
    init(engine(recover=False), storage, dataset)


@cli.command("create-base")
@click.option("-r", "release", required=True, metavar="RELEASE",
              help="FreeBSD release (e.g. 14.2) or, on Linux, 'busybox'; a label with --from-tar.")
@click.option("-b", "name", metavar="NAME", help="Base name (default: the release).")
@click.option("--from-tar", metavar="FILE", help="Import a root file system tarball instead.")
@changes
def create_base_cmd(release: str, name: str | None, from_tar: str | None) -> None:
    """Create a base: the tree pots are made from."""
    from ladle.engine.bases import create_base
    create_base(engine(), release, name, from_tar)


@cli.command("bases")
@click.option("--json", "as_json_", is_flag=True, help="Print JSON.")
@click.option("-q", "quiet", is_flag=True, help="Names only.")
def bases_cmd(as_json_: bool, quiet: bool) -> None:
    """List bases."""
    from ladle.engine.bases import list_bases
    rows = list_bases(engine(recover=False))
    if as_json_:
        as_json(rows)
    elif quiet:
        click.echo("\n".join(r["name"] for r in rows)) if rows else None
    else:
        table(rows, ["name", "release", "pots", "source"])


@cli.command("create")
@click.option("-p", "name", required=True, metavar="NAME", help="Pot name.")
@click.option("-b", "base", metavar="BASE", help="Base to build on.")
@click.option("-t", "type_", type=click.Choice(["single", "multi"]), default="multi", show_default=True)
@click.option("-l", "level", type=click.IntRange(0, 2), help="Level of a multi pot (default 1).")
@click.option("-P", "potbase", metavar="POT", help="Reference pot (level 2: share its tree; else copy it).")
@click.option("-c", "cmd", metavar="CMD", help="The pot's command (default 'sh /etc/rc').")
@click.option("-N", "network", type=click.Choice(["inherit", "none"]), default="none", show_default=True,
              help="inherit: the host's network stack; none: its own, with loopback only.")
@changes
def create_cmd(name: str, base: str | None, type_: str, level: int | None, potbase: str | None,
               cmd: str | None, network: str) -> None:
    """Create a pot."""
    from ladle.engine.pots import create
    create(engine(), name, base, type_, level, potbase, cmd, network)


@cli.command("destroy")
@click.option("-p", "pot", metavar="POT")
@click.option("-b", "base", metavar="BASE")
@click.option("-f", "fscomp", metavar="FSCOMP")
@click.option("-r", "recursive", is_flag=True, help="Also destroy what depends on it.")
@click.option("-F", "force", is_flag=True, help="Stop running pots first.")
@changes
def destroy_cmd(pot: str | None, base: str | None, fscomp: str | None, recursive: bool, force: bool) -> None:
    """Destroy a pot, a base or an fscomp; refuses to orphan dependants without -r."""
    if sum(x is not None for x in (pot, base, fscomp)) != 1:
        raise UsageError("give exactly one of -p POT, -b BASE or -f FSCOMP")
    eng = engine()
    if pot:
        from ladle.engine.pots import destroy
        destroy(eng, pot, recursive, force)
    elif base:
        from ladle.engine.bases import destroy_base
        destroy_base(eng, base, recursive, force)
    else:
        from ladle.engine.fscomps import destroy_fscomp
        destroy_fscomp(eng, fscomp or "")


@cli.command("ls")
@click.option("--json", "as_json_", is_flag=True, help="Print JSON.")
@click.option("-q", "quiet", is_flag=True, help="Names only.")
def ls_cmd(as_json_: bool, quiet: bool) -> None:
    """List pots."""
    from ladle.engine.pots import list_pots
    rows = list_pots(engine(recover=False))
    if as_json_:
        as_json(rows)
    elif quiet:
        click.echo("\n".join(r["name"] for r in rows)) if rows else None
    else:
        table(rows, ["name", "status", "base", "type", "level", "network"])


cli.add_command(ls_cmd, "list")


@cli.command("info")
@click.argument("positional", required=False, metavar="[NAME]")
@click.option("-p", "pot", metavar="NAME")
@click.option("--json", "as_json_", is_flag=True, help="Print JSON.")
def info_cmd(positional: str | None, pot: str | None, as_json_: bool) -> None:
    """Show a pot: type, level, status, command, attributes, mounts, snapshots, storage."""
    from ladle.cli.app import pot_name
    from ladle.engine.pots import info
    data = info(engine(recover=False), pot_name(positional, pot))
    if as_json_:
        as_json(data)
        return
    for key in ("name", "status", "type", "level", "base", "potbase", "network", "cmd"):
        click.echo(f"{key + ':':10} {'' if data[key] is None else data[key]}")
    click.echo(f"{'storage:':10} {data['storage']['backend']} {data['storage']['path']}")
    for k, v in data["env"].items():
        click.echo(f"{'env:':10} {k}={v}")
    click.echo("attributes: " + " ".join(f"{k}={v}" for k, v in data["attrs"].items()))
    for m in data["mounts"]:
        click.echo(f"{'mount:':10} {m['mountpoint']} <- {m['kind']} {m['source']}{' (ro)' if m['ro'] else ''}")
    if data["snapshots"]:
        click.echo(f"{'snapshots:':10} {' '.join(data['snapshots'])}")


@cli.command("clone")
@click.option("-p", "new", required=True, metavar="NEW")
@click.option("-P", "source", required=True, metavar="SOURCE")
@click.option("-s", "snap", metavar="SNAPSHOT", help="Snapshot of SOURCE (default: its latest).")
@changes
def clone_cmd(new: str, source: str, snap: str | None) -> None:
    """Create pot NEW as a clone of a snapshot of pot SOURCE."""
    from ladle.engine.pots import clone
    clone(engine(), new, source, snap)


@cli.command("rename")
@click.option("-p", "old", required=True, metavar="OLD")
@click.option("-n", "new", required=True, metavar="NEW")
@changes
def rename_cmd(old: str, new: str) -> None:
    """Rename a stopped pot (its storage, mounts and the pots that refer to it)."""
    from ladle.engine.pots import rename
    rename(engine(), old, new)


@cli.command("set-cmd")
@click.option("-p", "pot", required=True, metavar="POT")
@click.option("-c", "cmd", required=True, metavar="CMD")
@changes
def set_cmd_cmd(pot: str, cmd: str) -> None:
    """Set the pot's command (a shell command line, like pot's)."""
    from ladle.engine.pots import update
    if len(cmd) >= 2 and cmd[0] == cmd[-1] == '"':
        cmd = cmd[1:-1]
    if not cmd.strip():
        raise UsageError("the command must not be empty")
    update(engine(), pot, "set-cmd", cmd=cmd)


@cli.command("set-env")
@click.option("-p", "pot", required=True, metavar="POT")
@click.option("-E", "env", multiple=True, required=True, metavar="KEY=VALUE", help="Repeatable; replaces all.")
@changes
def set_env_cmd(pot: str, env: tuple[str, ...]) -> None:
    """Replace the pot's environment variables."""
    from ladle import names
    from ladle.engine.pots import update
    update(engine(), pot, "set-env", env=dict(names.env_pair(e) for e in env))


@cli.command("set-attr")
@click.option("-p", "pot", required=True, metavar="POT")
@click.option("-A", "attr", required=True, metavar="ATTR")
@click.option("-V", "value", required=True, metavar="VALUE")
@changes
def set_attr_cmd(pot: str, attr: str, value: str) -> None:
    """Set an attribute (persistent, procfs, fdescfs, mlock, sysvipc, stop_timeout, ...)."""
    from ladle.engine.lifecycle import set_attr
    set_attr(engine(), pot, attr, value)


@cli.command("get-attr")
@click.option("-p", "pot", required=True, metavar="POT")
@click.option("-A", "attr", required=True, metavar="ATTR")
@click.option("-q", "quiet", is_flag=True, help="The bare value.")
def get_attr_cmd(pot: str, attr: str, quiet: bool) -> None:
    """Print an attribute."""
    from ladle.engine.lifecycle import get_attr
    value = get_attr(engine(recover=False), pot, attr)
    click.echo(value if quiet else f"{attr}: {value}")


@cli.command("gc")
@changes
def gc_cmd() -> None:
    """Finish or roll back interrupted operations; clean up after crashed pots and leaked mounts."""
    from ladle.engine.gc import gc
    eng = engine(recover=False)
    lines = gc(eng)
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo("nothing to clean up")

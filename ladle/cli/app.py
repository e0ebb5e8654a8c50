"""The click group, shared options and the one place where errors become one line on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ladle.engine.core import Engine
from ladle.errors import LadleError, UsageError

F = TypeVar("F", bound=Callable[..., Any])


class Options:
    """Global options, which every mutating verb also accepts after its name."""

    def __init__(self, root: str | None, host: str | None, dry_run: bool) -> None:
        self.root = root
        self.host = host
        self.dry_run = dry_run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", metavar="DIR", help="State root (default: $LADLE_ROOT, the config file, "
              "/var/lib/ladle on Linux, /var/db/ladle on FreeBSD).")
@click.option("--host", type=click.Choice(["linux", "freebsd"]), help="Plan for this host (default: this one).")
@click.option("--dry-run", is_flag=True, help="Print the exact steps instead of running them.")
@click.version_option(package_name="ladle", message="ladle %(version)s")
@click.pass_context
def cli(ctx: click.Context, root: str | None, host: str | None, dry_run: bool) -> None:
    """ladle: pots (containers) on FreeBSD jails and Linux namespaces, with ZFS layering."""
    ctx.obj = Options(root, host, dry_run)


def engine(*, recover: bool = True) -> Engine:
    """The engine for this command; repairs operations a crashed command left half-done."""
    from ladle.config import load
    from ladle.hosts import this_host

    opts: Options = click.get_current_context().find_object(Options)  # type: ignore[assignment]
    eng = Engine(load(opts.host or this_host(), opts.root), dry_run=opts.dry_run)
    if recover and not opts.dry_run:
        from ladle.engine.gc import recover as repair
        for line in repair(eng):
            print(f"ladle: {line}", file=sys.stderr)
    return eng


def changes(f: F) -> F:
    """For verbs that change the host: accept --dry-run and --host after the verb too."""
    def set_dry(ctx: click.Context, _: click.Parameter, value: bool) -> None:
        if value:
            ctx.find_object(Options).dry_run = True  # type: ignore[union-attr]

    def set_host(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
        if value:
            ctx.find_object(Options).host = value  # type: ignore[union-attr]

    f = click.option("--dry-run", is_flag=True, expose_value=False, callback=set_dry,
                     help="Print the exact steps instead of running them.")(f)
    return click.option("--host", type=click.Choice(["linux", "freebsd"]), expose_value=False,
                        callback=set_host, help="Plan for this host.")(f)


def pot_name(positional: str | None, option: str | None) -> str:
    """pot's `-p NAME` and Docker's positional NAME, interchangeably."""
    if positional and option and positional != option:
        raise UsageError(f"two pot names given: {positional} and {option}")
    name = option or positional
    if not name:
        raise UsageError("no pot given: use NAME or -p NAME")
    return name


def run(args: list[str]) -> int:
    from ladle.cli import verbs_lifecycle, verbs_pots, verbs_storage  # noqa: F401  (registers verbs)

    try:
        result = cli.main(args, prog_name="ladle", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.exceptions.Abort:
        print("ladle: aborted", file=sys.stderr)
        return 130
    except click.ClickException as e:
        print(f"ladle: {e.format_message()}", file=sys.stderr)
        return 2
    except LadleError as e:
        print(f"ladle: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    return result if isinstance(result, int) else 0

"""Verbs that run pots: start, stop, exec, term, logs, run."""

from __future__ import annotations

import click

from ladle.cli.app import changes, cli, engine, pot_name

_PASSTHROUGH = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@cli.command("start")
@click.argument("positional", required=False, metavar="[NAME]")
@click.option("-p", "pot", metavar="NAME")
@changes
def start_cmd(positional: str | None, pot: str | None) -> None:
    """Start a pot; returns once its command runs, or fails with the reason."""
    from ladle.engine.lifecycle import start
    start(engine(), pot_name(positional, pot))


@cli.command("stop")
@click.argument("positional", required=False, metavar="[NAME]")
@click.option("-p", "pot", metavar="NAME")
@changes
def stop_cmd(positional: str | None, pot: str | None) -> None:
    """Stop a pot: SIGTERM, then SIGKILL after its stop_timeout; then clean up."""
    from ladle.engine.lifecycle import stop
    stop(engine(), pot_name(positional, pot))


@cli.command("exec", context_settings=_PASSTHROUGH)
@click.option("-p", "pot", metavar="NAME")
@click.option("-t", "tty", is_flag=True, help="Allocate a terminal.")
@click.option("-e", "env", multiple=True, metavar="KEY=VALUE", help="Extra environment (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the command instead of running it.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[NAME] [--] COMMAND [ARG]...")
@click.pass_context
def exec_cmd(ctx: click.Context, pot: str | None, tty: bool, env: tuple[str, ...], dry_run: bool,
             args: tuple[str, ...]) -> int:
    """Run a command inside a running pot; exits with its exit code."""
    from ladle.engine.lifecycle import exec_
    argv = list(args)
    if pot is None and argv:
        pot = argv.pop(0)
    if argv[:1] == ["--"]:
        argv.pop(0)
    if dry_run:
        ctx.obj.dry_run = True
    return exec_(engine(), pot_name(None, pot), argv, tty, list(env))


@cli.command("term")
@click.argument("positional", required=False, metavar="[NAME]")
@click.option("-p", "pot", metavar="NAME")
def term_cmd(positional: str | None, pot: str | None) -> int:
    """Open an interactive shell in a running pot."""
    import sys

    from ladle.engine.lifecycle import exec_
    return exec_(engine(), pot_name(positional, pot), ["/bin/sh"], sys.stdin.isatty(), [])


@cli.command("logs")
@click.argument("positional", required=False, metavar="[NAME]")
@click.option("-p", "pot", metavar="NAME")
@click.option("-f", "follow", is_flag=True, help="Keep printing new output until the pot stops.")
def logs_cmd(positional: str | None, pot: str | None, follow: bool) -> None:
    """Show the main process's stdout and stderr."""
    from ladle.engine.lifecycle import logs
    logs(engine(recover=False), pot_name(positional, pot), follow)


@cli.command("run", context_settings=_PASSTHROUGH)
@click.option("--rm", "remove", is_flag=True, help="Destroy the pot when its command exits.")
@click.option("-p", "--name", "name", metavar="NAME", help="Pot name (default: run-<random>).")
@click.option("-d", "--detach", "detach", is_flag=True, help="Start in the background and print the name.")
@click.option("-N", "network", type=click.Choice(["inherit", "none"]), default="none", show_default=True)
@click.argument("base", metavar="BASE")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[--] COMMAND [ARG]...")
@changes
def run_cmd(remove: bool, name: str | None, detach: bool, network: str, base: str, args: tuple[str, ...]) -> int:
    """Create a non-persistent pot on BASE, run COMMAND attached, exit with its code."""
    from ladle.engine.lifecycle import run
    argv = list(args)
    if argv[:1] == ["--"]:
        argv.pop(0)
    return run(engine(), base, argv, name, remove, detach, network)

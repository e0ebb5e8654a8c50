"""What every verb module shares: the parser class, adding a verb, pot names, printing a Change."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

import ladle
from ladle.cli.output import show_change

Verb = Callable[[ladle.Client, argparse.Namespace], "int | None"]
HOSTS = ("linux", "freebsd")


class Refused(Exception):
    """Bad command-line syntax: one line, exit code 2."""


class _Formatter(argparse.HelpFormatter):
    """argparse makes a formatter for every option it adds, and the default one imports shutil
    (2 ms) to ask for the terminal's width; the width matters only when help is printed."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, width or _columns())


def _columns() -> int:
    import os
    try:
        return max(40, int(os.environ.get("COLUMNS", "")) - 2)
    except ValueError:
        return 78


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument VERB: invalid choice: "):
            verb = message.split(": ", 2)[2].split(" (", 1)[0]
            raise Refused(f"unknown verb {verb} (see ladle --help)")
        extra = message.removeprefix("unrecognized arguments: ").split()
        if message.startswith("unrecognized") and any(a.partition("=")[0] == "--root" for a in extra):
            raise Refused("--root goes before the verb: ladle --root DIR VERB ...")
        where = self.prog.removeprefix("ladle").strip()
        raise Refused(f"{where}: {message}" if where else message)


class Skipped:
    """Stands for the parser of a verb this command does not use (see `verb`)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_mutually_exclusive_group(self) -> Skipped:
        return self


class Verbs:
    """The verbs' subparsers. Building the parsers of ~40 verbs costs ~20 ms, more than the rest of
    `ladle ls`, so when the command line names a known verb only that verb's parser is built (and
    all of them for --help or an unknown verb)."""

    def __init__(self, subparsers: Any, only: str | None) -> None:
        self.subparsers = subparsers
        self.only = only


def verb(verbs: Verbs, name: str, func: Verb, help: str, *, changes: bool = False,
         aliases: tuple[str, ...] = ()) -> Any:
    """Add a verb. One that `changes` the host also takes --dry-run and --host after its name."""
    if verbs.only is not None and verbs.only != name and verbs.only not in aliases:
        return Skipped()
    p: Parser = verbs.subparsers.add_parser(name, help=help, description=help, aliases=list(aliases))
    p.set_defaults(func=func)
    if changes:
        p.add_argument("--dry-run", action="store_true", default=argparse.SUPPRESS,
                       help="print the exact steps instead of running them")
        p.add_argument("--host", choices=HOSTS, default=argparse.SUPPRESS, help="plan for this host")
    return p


NET_TYPES = ("inherit", "none", "alias", "public-bridge", "private-bridge")
STACKS = ("ipv4", "ipv6", "dual")


def net_args(p: Parser, *, default: str | None = "none") -> None:
    """-N, -i, -B and -S: a pot's network, as create, run and set-network take them."""
    what = ("network type: inherit (the host's stack), none (loopback only), alias (-i [IF|]IP on a host "
            "interface), public-bridge or private-bridge (-B)")
    p.add_argument("-N", dest="network", choices=NET_TYPES, default=default, required=default is None,
                   help=what + (f"; default {default}" if default else ""))
    p.add_argument("-i", dest="addresses", action="append", metavar="ADDR",
                   help="bridges: auto (default) or an IP, one per IP version; alias: [IF|]IP (repeatable)")
    p.add_argument("-B", dest="bridge", metavar="BRIDGE", help="the private bridge of -N private-bridge")
    p.add_argument("-S", dest="stack", choices=STACKS, help="IP versions: ipv4, ipv6 or dual (default: the host's)")


def pot_arg(p: Parser) -> None:
    """pot's `-p NAME` and Docker's positional NAME, interchangeably."""
    p.add_argument("positional", nargs="?", metavar="NAME")
    p.add_argument("-p", dest="pot", metavar="NAME")


def pot_opt(p: Parser) -> None:
    """pot's required `-p POT`, for the verbs that take no positional NAME."""
    p.add_argument("-p", dest="pot", required=True, metavar="POT")


def pot_name(args: argparse.Namespace) -> str:
    if args.positional and args.pot and args.positional != args.pot:
        raise ladle.UsageError(f"two pot names given: {args.positional} and {args.pot}")
    name = args.pot if args.pot is not None else args.positional
    if name is None:
        raise ladle.UsageError("no pot given: use NAME or -p NAME")
    return str(name)


def change(func: Callable[[ladle.Client, argparse.Namespace], ladle.Change]) -> Verb:
    """A verb whose result is a Change: print its message, or its commands in a dry run."""
    def run(client: ladle.Client, args: argparse.Namespace) -> None:
        show_change(func(client, args))
    return run

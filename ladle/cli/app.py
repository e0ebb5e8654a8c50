"""The parser, the options every verb shares, and the one place where errors become one line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import ladle
from ladle.cli.output import show_change

Verb = Callable[[ladle.Client, argparse.Namespace], "int | None"]
HOSTS = ("linux", "freebsd")


class Refused(Exception):
    """Bad command-line syntax: one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        if message.startswith("argument VERB: invalid choice: "):
            verb = message.split(": ", 2)[2].split(" (", 1)[0]
            raise Refused(f"unknown verb {verb} (see ladle --help)")
        where = self.prog.removeprefix("ladle").strip()
        raise Refused(f"{where}: {message}" if where else message)


def _parser() -> Parser:
    top = Parser(prog="ladle", description="ladle: pots (containers) on FreeBSD jails and Linux "
                 "namespaces, with ZFS layering.")
    top.add_argument("--root", metavar="DIR", help="state root (default: $LADLE_ROOT, the config file, "
                     "/var/lib/ladle on Linux, /var/db/ladle on FreeBSD)")
    top.add_argument("--host", choices=HOSTS, help="plan for this host (default: this one; needs --dry-run)")
    top.add_argument("--dry-run", action="store_true", help="print the exact steps instead of running them")
    top.add_argument("-V", "--version", action="version", version=f"ladle {ladle.__version__}")
    verbs = top.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    from ladle.cli import verbs_lifecycle, verbs_pots, verbs_storage
    for module in (verbs_pots, verbs_storage, verbs_lifecycle):
        module.register(verbs)
    return top


def verb(verbs: Any, name: str, func: Verb, help: str, *, changes: bool = False,
         aliases: tuple[str, ...] = ()) -> Parser:
    """Add a verb. One that `changes` the host also takes --dry-run and --host after its name."""
    p: Parser = verbs.add_parser(name, help=help, description=help, aliases=list(aliases))
    p.set_defaults(func=func)
    if changes:
        p.add_argument("--dry-run", action="store_true", default=argparse.SUPPRESS,
                       help="print the exact steps instead of running them")
        p.add_argument("--host", choices=HOSTS, default=argparse.SUPPRESS, help="plan for this host")
    return p


def pot_arg(p: Parser) -> None:
    """pot's `-p NAME` and Docker's positional NAME, interchangeably."""
    p.add_argument("positional", nargs="?", metavar="NAME")
    p.add_argument("-p", dest="pot", metavar="NAME")


def pot_name(args: argparse.Namespace) -> str:
    if args.positional and args.pot and args.positional != args.pot:
        raise ladle.UsageError(f"two pot names given: {args.positional} and {args.pot}")
    name = args.pot or args.positional
    if not name:
        raise ladle.UsageError("no pot given: use NAME or -p NAME")
    return str(name)


def change(func: Callable[[ladle.Client, argparse.Namespace], ladle.Change]) -> Verb:
    """A verb whose result is a Change: print its message, or its commands in a dry run."""
    def run(client: ladle.Client, args: argparse.Namespace) -> None:
        show_change(func(client, args))
    return run


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "ladle: warning: " if record.levelno >= logging.WARNING else "ladle: "
        return prefix + record.getMessage()


def _log_to_stderr() -> None:
    logger = logging.getLogger("ladle")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_OneLine())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def run(argv: list[str]) -> int:
    _log_to_stderr()
    try:
        args = _parser().parse_args(argv)
        if not args.verb:
            raise Refused("no verb given (see ladle --help)")
        client = ladle.Client(args.root, host=args.host, dry_run=args.dry_run)
        try:
            result = args.func(client, args)
        finally:
            client.close()
    except Refused as e:
        print(f"ladle: {e}", file=sys.stderr)
        return 2
    except ladle.LadleError as e:
        print(f"ladle: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    return result if isinstance(result, int) else 0

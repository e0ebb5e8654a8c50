"""The parser, the options every verb shares, and the one place where errors become one line."""

from __future__ import annotations

import sys

import ladle
from ladle.cli.common import HOSTS, Parser, Refused, Verbs

# Every verb, with its aliases (kept in step with the verb modules by test_cli_pots).
VERBS = frozenset((
    "init", "create-base", "bases", "create", "destroy", "ls", "list", "info", "clone", "rename", "set-cmd",
    "set-env", "set-attr", "get-attr", "gc", "create-fscomp", "fscomps", "clone-fscomp", "add-fscomp",
    "mount-in", "mount-out", "copy-in", "copy-out", "snapshot", "snap", "rollback", "revert", "snapshots",
    "promote", "purge-snapshots", "start", "stop", "exec", "term", "logs", "signal", "wait", "last-run-stats",
    "run", "network", "create-private-bridge", "destroy-private-bridge", "set-network", "export-ports",
    "set-hosts", "pull", "push", "login", "images", "rmi", "image", "set-health", "healthcheck", "add-dep",
    "del-dep", "set-hook", "restart", "boot", "commit", "build", "tag", "save", "load", "set-rss", "get-rss",
    "stats", "ps", "show"))
_VALUED = ("--root", "--host")


def named_verb(argv: list[str]) -> str | None:
    """The verb of a command line, if it names a known one (global options may come first)."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in VERBS else None
    return None


def _parser(argv: list[str]) -> Parser:
    top = Parser(prog="ladle", description="ladle: pots (containers) on FreeBSD jails and Linux "
                 "namespaces, with ZFS layering.")
    top.add_argument("--root", metavar="DIR", help="state root (default: $LADLE_ROOT, the config file, "
                     "/var/lib/ladle on Linux, /var/db/ladle on FreeBSD)")
    top.add_argument("--host", choices=HOSTS, help="plan for this host (default: this one; needs --dry-run)")
    top.add_argument("--dry-run", action="store_true", help="print the exact steps instead of running them")
    top.add_argument("-V", "--version", action="version", version=f"ladle {ladle.__version__}")
    verbs = Verbs(top.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser), named_verb(argv))
    from ladle.cli import (
        verbs_images,
        verbs_life,
        verbs_lifecycle,
        verbs_network,
        verbs_pots,
        verbs_resources,
        verbs_storage,
    )
    for module in (verbs_pots, verbs_storage, verbs_lifecycle, verbs_life, verbs_network, verbs_images,
                   verbs_resources):
        module.register(verbs)
    return top


def _one_line(level: str, message: str) -> None:
    """The library's warnings and notices, as the CLI prints them: one line on stderr each."""
    print(f"ladle: warning: {message}" if level == "warning" else f"ladle: {message}", file=sys.stderr)


def run(argv: list[str]) -> int:
    from ladle import _log
    _log.to_presenter = _one_line
    try:
        args = _parser(argv).parse_args(argv)
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

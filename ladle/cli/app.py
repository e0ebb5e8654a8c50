"""The parser, the options every verb shares, and the one place where errors become one line."""

from __future__ import annotations

import logging
import sys

import ladle
from ladle.cli.common import HOSTS, Parser, Refused


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

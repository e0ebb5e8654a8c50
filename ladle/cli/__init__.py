"""The `ladle` command: a presenter of `ladle.Client` and nothing else.

`--version` answers before anything else is imported (DESIGN §9); argparse (not click) keeps
every other command's start-up short.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"], ["version"]):
        from ladle import __version__
        print(f"ladle {__version__}")
        return 0
    from ladle.cli.app import run
    return run(args)

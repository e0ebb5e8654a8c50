"""The `ladle` command. `--version` answers before anything heavy is imported (DESIGN §9)."""

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

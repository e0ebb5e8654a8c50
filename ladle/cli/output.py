"""Tables for people and JSON for scripts; plain text keeps `ladle ls` fast."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

import ladle


def table(rows: Sequence[Any], columns: list[str]) -> None:
    dicts = [r if isinstance(r, dict) else dataclasses.asdict(r) for r in rows]
    cells = [[c.upper() for c in columns]] + [["" if r.get(c) is None else str(r[c]) for c in columns]
                                             for r in dicts]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def as_json(data: Any) -> None:
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = dataclasses.asdict(data)
    elif isinstance(data, list):
        data = [dataclasses.asdict(d) if dataclasses.is_dataclass(d) and not isinstance(d, type) else d
                for d in data]
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def names(rows: Sequence[Any]) -> None:
    if rows:
        sys.stdout.write("".join(f"{r.name}\n" for r in rows))


def show_change(change: ladle.Change) -> None:
    """A dry run prints the exact commands; a real one its confirmation."""
    if change.dry_run:
        sys.stdout.write("".join(f"{line}\n" for line in change.commands))
    elif change.message:
        sys.stdout.write(change.message + "\n")

"""Tables for people and JSON for scripts; plain text keeps `ladle ls` fast."""

from __future__ import annotations

import json
import sys
from typing import Any


def table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[c.upper() for c in columns]] + [["" if r.get(c) is None else str(r[c]) for c in columns]
                                             for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def as_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")

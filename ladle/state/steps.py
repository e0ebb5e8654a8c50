"""State changes as steps, so that a plan's database writes are undone with its host changes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ladle.errors import HostError
from ladle.plan.steps import Context, Step


@dataclass
class StatePut(Step):
    """Replace one row (`new` None deletes it); `old` is what undo puts back."""

    table: str
    key: dict[str, Any]
    new: dict[str, Any] | None
    old: dict[str, Any] | None = None

    def render(self) -> list[str]:
        what = " ".join(f"{k}={v}" for k, v in self.key.items())
        if self.new is None:
            return [f"# state: forget {self.table} {what}"]
        return [f"# state: record {self.table} {what}"]

    def apply(self, ctx: Context) -> None:
        if ctx.store is None:
            raise HostError("no state store")
        ctx.store.put(self.table, self.key, self.new)

    def inverse(self) -> list[Step]:
        return [StatePut(self.table, self.key, self.old, self.new)]


def put(table: str, key: dict[str, Any], new: dict[str, Any] | None, old: dict[str, Any] | None) -> StatePut:
    """A StatePut whose JSON columns are encoded (rows in the store hold JSON as text)."""
    return StatePut(table, key, _enc(new), _enc(old))


def _enc(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}

"""What the library's actions return: frozen dataclasses, in a module of their own (see `_models`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    """What a verb that changes something did; in a dry run (nothing changed), `commands` are
    the exact host commands its plans would run."""

    message: str
    commands: tuple[str, ...] = ()
    dry_run: bool = False


@dataclass(frozen=True)
class RunResult:
    """`run`: the pot's name, its command's exit code, and its output when it was captured
    (stdout and stderr in the order they were written). In a dry run, `commands` is the plan."""

    name: str
    exit_code: int
    output: bytes | None = None
    commands: tuple[str, ...] = ()

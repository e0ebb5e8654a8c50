"""Runs plans: records each step in the intent log, undoes what was done when a step fails.

`on_crash` tells `ladle gc` what to do with an operation whose process died half-way:
"undo" rolls back the steps that ran (create, clone, ...); "finish" runs the rest (stop, destroy),
because a half-torn-down pot is better finished than rebuilt.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, Literal, TextIO

from ladle.errors import LadleError
from ladle.plan.steps import Context, Step

if TYPE_CHECKING:
    pass

OnCrash = Literal["undo", "finish"]


class Executor:
    """Applies plans for real, or prints them with `dry_run`."""

    def __init__(self, ctx: Context, *, dry_run: bool = False, out: TextIO | None = None) -> None:
        self.ctx = ctx
        self.dry_run = dry_run
        self.out = out or sys.stdout

    def run(self, verb: str, subject: str, steps: list[Step], on_crash: OnCrash = "undo") -> None:
        if self.dry_run:
            for step in steps:
                for line in step.render():
                    print(line, file=self.out)
            return
        store = self.ctx.store
        op = store.op_begin(verb, subject, [s.to_json() for s in steps], on_crash) if store else 0
        done: list[Step] = []
        crash_at = _fault(verb)
        try:
            for i, step in enumerate(steps):
                if store:
                    store.op_step(op, i, "started")
                step.apply(self.ctx)  # a step that fails cleans up after itself
                done.append(step)
                if store:
                    store.op_step(op, i, "done")
                if i == crash_at:
                    os.kill(os.getpid(), signal.SIGKILL)
        except BaseException as exc:
            for problem in undo(self.ctx, done):
                print(f"ladle: warning: could not undo {problem}", file=sys.stderr)
            if store:
                store.op_end(op, "rolled-back", str(exc))
            raise
        if store:
            store.op_end(op, "done")


def _fault(verb: str) -> int | None:
    """Fault injection for the crash tests: LADLE_FAULT=VERB:N kills this process after step N."""
    spec = os.environ.get("LADLE_FAULT", "")
    name, _, index = spec.partition(":")
    return int(index) if name == verb and index.isdigit() else None


def undo(ctx: Context, steps: list[Step]) -> list[str]:
    """Undo `steps` in reverse, carrying on past failures; returns what could not be undone."""
    problems = []
    for step in reversed(steps):
        for inverse in step.inverse():
            try:
                inverse.apply(ctx)
            except (LadleError, OSError) as e:
                problems.append(f"{inverse.render()[0]}: {e}")
    return problems


def finish(ctx: Context, steps: list[Step]) -> list[str]:
    """Run `steps` in order, carrying on past failures (roll-forward after a crash)."""
    problems = []
    for step in steps:
        try:
            step.apply(ctx)
        except (LadleError, OSError) as e:
            problems.append(f"{step.render()[0] if step.render() else type(step).__name__}: {e}")
    return problems

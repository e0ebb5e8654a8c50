"""Runs plans: records each step in the intent log, undoes what was done when a step fails.

`on_crash` tells recovery (`ladle gc`, or the next command) what to do with an operation whose
process died half-way: "undo" rolls back the steps that ran (create, clone, start, ...); "finish"
runs the rest (stop, destroy), because a half-torn-down pot is better finished than rebuilt.
Whatever `on_crash` says, an operation whose steps all ran, or that ran past its `Commit` (the
point after which it deletes an old version), is finished, never undone: undoing it would have to
put back what is already gone.

Nothing here prints: a plan's rendering is returned to the caller, and what could not be undone is
logged on the `ladle` logger (the CLI shows those as warnings).
"""

from __future__ import annotations

import os
import signal
from typing import Literal

from ladle import _log
from ladle.errors import LadleError
from ladle.plan.steps import Commit, Context, Step

OnCrash = Literal["undo", "finish"]


def render(steps: list[Step]) -> list[str]:
    """The exact commands of a plan, in order."""
    return [line for step in steps for line in step.render()]


class Executor:
    """Applies plans for real, or only renders them with `dry_run`."""

    def __init__(self, ctx: Context, *, dry_run: bool = False) -> None:
        self.ctx = ctx
        self.dry_run = dry_run

    def run(self, verb: str, subject: str, steps: list[Step], on_crash: OnCrash = "undo") -> list[str]:
        """Apply `steps`, or in a dry run return their rendering (a real run renders nothing: the
        commands are the plan's to print, not a cost of every start)."""
        if self.dry_run:
            return render(steps)
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
                if isinstance(step, Commit):
                    break
        except BaseException as exc:
            problems = undo(self.ctx, done)
            for problem in problems:
                _log.warning(f"could not undo {problem}")
            if store and problems:  # `ladle gc` lists what is left
                store.op_end(op, "failed", f"{exc}; could not undo {problems[0]}")
            elif store:  # wholly undone: as if it never ran
                store.op_end(op, "rolled-back")
            raise
        rest = steps[len(done):]
        for i, step in enumerate(rest, start=len(done)):
            if store:
                store.op_step(op, i, "started")
            for problem in finish(self.ctx, [step]):  # past the Commit: carry on, never undo
                _log.warning(f"could not finish: {problem}")
            if store:
                store.op_step(op, i, "done")
            if i == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)
        if store:
            store.op_end(op, "done")
        return []


_plans: dict[str, int] = {}  # plans run by this process, by verb (for LADLE_FAULT's K)


def _fault(verb: str) -> int | None:
    """Fault injection for the crash tests: LADLE_FAULT=VERB:N kills this process after step N
    of a plan named VERB; VERB:N:K only in the K-th such plan this process runs (`destroy -r`
    destroys each dependant in a plan of its own, `init` runs two)."""
    _plans[verb] = _plans.get(verb, 0) + 1
    name, _, rest = os.environ.get("LADLE_FAULT", "").partition(":")
    index, _, nth = rest.partition(":")
    if name != verb or not index.isdigit() or (nth and (not nth.isdigit() or int(nth) != _plans[verb])):
        return None
    return int(index)


def _first_line(step: Step) -> str:
    lines = step.render()
    return lines[0] if lines else type(step).__name__


def reason(e: Exception) -> str:
    """One line: a LadleError's message, or the type and first line of anything else."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text if isinstance(e, LadleError) else f"{type(e).__name__}: {text}".rstrip(": ")


def committed(steps: list[Step], states: list[str]) -> bool:
    """Whether a plan whose steps got as far as `states` ('pending', 'started', 'done') says is
    past its point of no return: all of it ran, or its Commit did."""
    return all(s == "done" for s in states) or any(
        isinstance(step, Commit) and state != "pending" for step, state in zip(steps, states, strict=True))


def undo(ctx: Context, steps: list[Step]) -> list[str]:
    """Undo `steps` in reverse, carrying on past failures; returns what could not be undone."""
    problems = []
    for step in reversed(steps):
        for inverse in step.inverse():
            try:
                inverse.apply(ctx)
            except Exception as e:  # one step's failure must not stop the others
                problems.append(f"{_first_line(inverse)}: {reason(e)}")
    return problems


def finish(ctx: Context, steps: list[Step]) -> list[str]:
    """Run `steps` in order, carrying on past failures (roll-forward after a crash)."""
    problems = []
    for step in steps:
        try:
            step.apply(ctx)
        except Exception as e:  # one step's failure must not stop the others
            problems.append(f"{_first_line(step)}: {reason(e)}")
    return problems

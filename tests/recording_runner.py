"""The one fake the project allows: a Runner that records every command and answers from a table.

Answers are matched by regular expression (re.search) against the command joined as a shell line
(shlex.join); the first match wins. An answer is the command's stdout, or a `Fail` for a command
that exits non-zero. Commands that match nothing succeed with empty output, which is what most
commands that change the host print.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from ladle.errors import CommandFailed
from ladle.plan.runner import Runner


@dataclass(frozen=True)
class Fail:
    """A canned failure: exit code and stderr."""

    stderr: str = ""
    code: int = 1
    stdout: str = ""


Answer = str | Fail


@dataclass
class Call:
    argv: list[str]
    input: bytes | None = None
    check: bool = True

    @property
    def line(self) -> str:
        return shlex.join(self.argv)


@dataclass
class RecordingRunner(Runner):
    """Records `run` and `pipeline` calls in order; answers from `answers` (pattern -> answer)."""

    answers: list[tuple[str, Answer]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    pipelines: list[list[list[str]]] = field(default_factory=list)

    def answer(self, pattern: str, answer: Answer) -> RecordingRunner:
        """Add an answer in front of the others (later calls override earlier ones)."""
        self.answers.insert(0, (pattern, answer))
        return self

    def _lookup(self, argv: list[str]) -> Answer:
        line = shlex.join(argv)
        for pattern, answer in self.answers:
            if re.search(pattern, line):
                return answer
        return ""

    def run(self, argv: list[str], *, input: bytes | None = None, check: bool = True) -> str:
        self.calls.append(Call(list(argv), input, check))
        answer = self._lookup(argv)
        if isinstance(answer, Fail):
            if check:
                raise CommandFailed(list(argv), answer.code, answer.stderr)
            return answer.stdout
        return answer

    def pipeline(self, argvs: list[list[str]]) -> None:
        self.pipelines.append([list(a) for a in argvs])
        for argv in argvs:
            answer = self._lookup(argv)
            if isinstance(answer, Fail):
                raise CommandFailed(list(argv), answer.code, answer.stderr)

    @property
    def argvs(self) -> list[list[str]]:
        return [c.argv for c in self.calls]

    @property
    def lines(self) -> list[str]:
        return [c.line for c in self.calls]

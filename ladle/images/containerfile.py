"""A Containerfile (Dockerfile) subset read into instructions, and the builder's word rules.

Lines: `#` comments (and `# syntax=`, `# escape=` directives: ignored), a backslash at the end of
a line continues it, instructions are case-insensitive. RUN, CMD and ENTRYPOINT take the shell
form (`/bin/sh -c TEXT`) or the exec form (a JSON list of strings) and are never expanded by
the builder (the shell does it). The other instructions' arguments are split into words with
quotes and backslashes as Docker does, `$NAME`, `${NAME}`, `${NAME:-word}` and `${NAME:+word}`
expanded outside single quotes from the build arguments and the image's environment so far.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ladle.errors import UsageError

KINDS = ("FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME",
         "LABEL", "STOPSIGNAL")
LAYERS = ("RUN", "COPY", "ADD")  # the instructions that change the file system
MAX_FILE = 1 << 20
CACHE = "ladle.build/cache"  # the image index's name for each build step's image, tagged by its key
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}"
                  r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Instruction:
    line: int
    kind: str
    args: str  # the rest of the line, continuations joined

    @property
    def text(self) -> str:
        return f"{self.kind} {self.args}"


def parse(body: bytes, where: str) -> list[Instruction]:
    """The instructions of a Containerfile; one line of error naming the line that is wrong."""
    if len(body) > MAX_FILE:
        raise UsageError(f"{where} is larger than {MAX_FILE} bytes")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise UsageError(f"{where} is not UTF-8 text") from None
    if "\0" in text:
        raise UsageError(f"{where} holds a NUL byte")
    out: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#"):
            continue  # a comment, also inside a continued instruction (as Docker)
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        if pending.strip():
            out.append(_instruction(pending.strip(), start, where))
        pending = ""
    if pending.strip():
        out.append(_instruction(pending.strip(), start, where))
    if not out:
        raise UsageError(f"{where} has no instructions")
    first = next((i for i in out if i.kind != "ARG"), None)
    if first is None or first.kind != "FROM":
        raise UsageError(f"{where}: the first instruction (after ARGs) must be FROM")
    if sum(i.kind == "FROM" for i in out) > 1:
        raise UsageError(f"{where} line {[i.line for i in out if i.kind == 'FROM'][1]}: one FROM only "
                         "(multi-stage builds are not supported)")
    return out


def _instruction(line: str, number: int, where: str) -> Instruction:
    word, _, rest = line.partition(" ")
    kind = word.upper()
    if kind not in KINDS:
        shown = word if word.isprintable() and len(word) < 40 else repr(word[:40])
        raise UsageError(f"{where} line {number}: unknown instruction {shown}")
    if not rest.strip():
        raise UsageError(f"{where} line {number}: {kind} needs an argument")
    return Instruction(number, kind, rest.strip())


def exec_form(args: str) -> list[str] | None:
    """The exec form's argv when `args` is a JSON list of strings, else None (the shell form)."""
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if isinstance(value, list) and value and all(isinstance(x, str) for x in value):
        return value
    return None


def command(ins: Instruction) -> list[str]:
    """RUN's, CMD's or ENTRYPOINT's argv: the exec form, or the shell form under /bin/sh -c."""
    return exec_form(ins.args) or ["/bin/sh", "-c", ins.args]


def expand(text: str, env: Mapping[str, str]) -> str:
    """`$NAME` and `${NAME...}` replaced from `env` (unknown names are empty)."""
    def one(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        value = env.get(name, "")
        if m.group("op") == "-":
            return value or m.group("word")
        if m.group("op") == "+":
            return m.group("word") if value else ""
        return value
    return _VAR.sub(one, text)


def words(text: str, env: Mapping[str, str], where: str) -> list[str]:
    """Split into words: blanks separate, quotes group, a backslash escapes the next character;
    variables are expanded except inside single quotes."""
    out: list[str] = []
    word: list[str] = []
    started = False
    i, quote = 0, ""
    while i < len(text):
        c = text[i]
        if quote == "'" and c != "'":
            word.append(c)
        elif c == "\\" and i + 1 < len(text) and quote != "'":
            word.append(text[i + 1])
            i += 1
        elif c in "'\"" and (not quote or quote == c):
            quote = "" if quote else c
            started = True
        elif c == "$" and quote != "'":
            m = _VAR.match(text, i)
            if m:
                word.append(expand(m.group(0), env))
                i = m.end()
                started = True
                continue
            word.append(c)
        elif c.isspace() and not quote:
            if word or started:
                out.append("".join(word))
            word, started = [], False
        else:
            word.append(c)
        i += 1
    if quote:
        raise UsageError(f"{where}: an unterminated {quote} quote")
    if word or started:
        out.append("".join(word))
    return out


def pairs(ins: Instruction, env: Mapping[str, str], where: str) -> list[tuple[str, str]]:
    """ENV's and LABEL's `K=V ...` (or ENV's old `K V`), expanded."""
    found = words(ins.args, env, where)
    if ins.kind == "ENV" and found and "=" not in found[0]:
        if len(found) < 2:
            raise UsageError(f"{where}: ENV needs NAME=VALUE or NAME VALUE")
        key, _, value = ins.args.partition(" ")
        found = [key + "=" + " ".join(words(value, env, where))]
    out = []
    for w in found:
        key, eq, value = w.partition("=")
        if not eq or not key or (ins.kind == "ENV" and not _NAME.fullmatch(key)):
            raise UsageError(f"{where}: {ins.kind} takes NAME=VALUE, not {w[:40]!r}")
        out.append((key, value))
    return out


def arg(ins: Instruction, where: str) -> tuple[str, str | None]:
    """ARG NAME[=default]."""
    name, eq, default = ins.args.partition("=")
    if not _NAME.fullmatch(name.strip()):
        raise UsageError(f"{where}: ARG takes NAME or NAME=DEFAULT, not {ins.args[:40]!r}")
    return name.strip(), (words(default, {}, where) or [""])[0] if eq else None

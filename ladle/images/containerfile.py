"""A Containerfile (Dockerfile) subset read into instructions, and the builder's word rules.

Lines: `#` comments (and `# syntax=`, `# escape=` directives: ignored), a backslash at the end of
a line continues it, instructions are case-insensitive. RUN, CMD and ENTRYPOINT take the shell
form (`/bin/sh -c TEXT`, or under SHELL's array) or the exec form (a JSON list of strings) and are
never expanded by the builder (the shell does it); HEALTHCHECK is read into Docker's `Healthcheck`
here. COPY's and HEALTHCHECK's `--NAME=VALUE` options come first. The other instructions'
arguments are split into words with quotes and backslashes as Docker does, `$NAME`, `${NAME}`,
`${NAME:-word}` and `${NAME:+word}` expanded outside single quotes from the build arguments and
the image's environment so far.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ladle.errors import UsageError

KINDS = ("FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME",
         "LABEL", "STOPSIGNAL", "HEALTHCHECK", "SHELL")
LAYERS = ("RUN", "COPY", "ADD")  # the instructions that change the file system
MAX_FILE = 1 << 20
CACHE = "ladle.build/cache"  # the image index's name for each build step's image, tagged by its key
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STAGE = re.compile(r"[a-z][a-z0-9_.-]*")  # Docker's rule for `FROM IMAGE AS NAME` (case folded)
_FLAG = re.compile(r"--([a-z-]+)=(\S*)\s+")
SHELL = ["/bin/sh", "-c"]  # the shell form's shell until a SHELL instruction (or the base image) says otherwise
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


def command(ins: Instruction, shell: list[str] | None = None) -> list[str]:
    """RUN's, CMD's or ENTRYPOINT's argv: the exec form, or the shell form under `shell` (SHELL's,
    or /bin/sh -c)."""
    return exec_form(ins.args) or [*(shell or SHELL), ins.args]


def flags(ins: Instruction, allowed: tuple[str, ...], at: str) -> tuple[dict[str, str], str]:
    """The `--NAME=VALUE` options at the start of the arguments (only `allowed` ones, each once)
    and the text after them."""
    found: dict[str, str] = {}
    rest = ins.args + " "
    while m := _FLAG.match(rest):
        if m.group(1) not in allowed or m.group(1) in found:
            why = "given twice" if m.group(1) in found else "not supported"
            raise UsageError(f"{at}: {ins.kind} --{m.group(1)} is {why}")
        found[m.group(1)] = m.group(2)
        rest = rest[m.end():]
    if rest.startswith("--"):
        raise UsageError(f"{at}: {ins.kind} {rest.split()[0][:30]} is not supported")
    return found, rest.strip()


def from_line(ins: Instruction, env: Mapping[str, str], at: str) -> tuple[str, str | None]:
    """FROM IMAGE [AS NAME]: the image (or earlier stage) and the stage's name, in lower case."""
    found = words(ins.args, env, at)
    if len(found) == 1:
        return found[0], None
    if len(found) in (2, 3) and found[1].lower() == "as":
        if len(found) == 2:
            raise UsageError(f"{at}: FROM {found[0][:40]} AS needs a stage name")
        if not _STAGE.fullmatch(found[2].lower()):
            raise UsageError(f"{at}: stage name {found[2][:40]!r} must start with a letter and hold letters, digits,"
                             " '_', '.' and '-'")
        return found[0], found[2].lower()
    raise UsageError(f"{at}: FROM takes IMAGE [AS NAME] (or scratch)")


def shell(ins: Instruction, at: str) -> list[str]:
    """SHELL's JSON array: the executable and its parameters."""
    found = exec_form(ins.args)
    if found is None:
        raise UsageError(f"{at}: SHELL takes a JSON array of strings, like [\"/bin/sh\", \"-c\"]")
    return found


_GO_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?(?:ns|us|µs|ms|s|m|h))+")
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")
_NS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
MAX_CHECK_NS = 86400 * 10**9  # as set-health and an image's check on create (engine/health.py): a day
MAX_RETRIES = 1000


def _nanoseconds(option: str, text: str, at: str) -> int:
    """A Go duration (Docker's flags: `30s`, `1m30s`, `500ms`) in nanoseconds: 0 (the default) or
    from 1ms (Docker's floor) to a day."""
    if not _GO_DURATION.fullmatch(text):
        raise UsageError(f"{at}: HEALTHCHECK --{option} takes a duration like 30s, 1m30s or 500ms, not {text[:40]!r}")
    ns = int(sum(float(n) * _NS[u] for n, u in _GO_PART.findall(text)))
    if ns and not 10**6 <= ns <= MAX_CHECK_NS:
        raise UsageError(f"{at}: HEALTHCHECK --{option} takes 0 or 1ms to 24h, not {text!r}")
    return ns


def healthcheck(ins: Instruction, at: str) -> dict[str, Any]:
    """HEALTHCHECK [OPTIONS] CMD ... or HEALTHCHECK NONE, as Docker writes it in the config's
    `Healthcheck` (zeros left out: the runtime's defaults)."""
    opts, rest = flags(ins, ("interval", "timeout", "start-period", "retries"), at)
    word, _, cmd = rest.partition(" ")
    if word.upper() == "NONE" and not cmd.strip():
        if opts:
            raise UsageError(f"{at}: HEALTHCHECK NONE takes no options")
        return {"Test": ["NONE"]}
    if word.upper() != "CMD" or not cmd.strip():
        raise UsageError(f"{at}: HEALTHCHECK takes [OPTIONS] CMD COMMAND or NONE")
    argv = exec_form(cmd.strip())
    out: dict[str, Any] = {"Test": ["CMD", *argv] if argv else ["CMD-SHELL", cmd.strip()]}
    for option, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod")):
        if option in opts and (ns := _nanoseconds(option, opts[option], at)):
            out[key] = ns
    if "retries" in opts:
        n = opts["retries"]
        if not n.isascii() or not n.isdigit() or int(n) > MAX_RETRIES:
            raise UsageError(f"{at}: HEALTHCHECK --retries takes a number from 0 to {MAX_RETRIES}, not {n[:40]!r}")
        if int(n):
            out["Retries"] = int(n)
    return out


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

"""pot's flavours: `create -f NAME` finds NAME (a file of ladle commands) and/or NAME.sh (a shell
script run inside the new pot) in the flavours directory, or at a path when NAME has a '/'.

A command file's lines are configuration verbs of the new pot only, each as `ladle LINE -p POT`
would run it: the pot is the flavour's, so a line may not name one, and nothing else (no destroy,
no other pot, no start) is allowed. Every file is read and every line parsed before the pot is
created, so a bad flavour changes nothing; the library applies the calls (`Client.create`).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from typing import Any

from ladle.config import Config
from ladle.errors import UsageError
from ladle.names import short

DEFAULT_DIR = {"linux": "/etc/ladle/flavours", "freebsd": "/usr/local/etc/ladle/flavours"}
MAX_FILE = 1 << 20  # a command file or script: more is not a flavour
MAX_LINES = 1000

# verb -> (the Client method, {option: (keyword, kind)}); kind: 'one' value, 'many' (repeatable), 'flag'
_Spec = tuple[str, dict[str, tuple[str, str]]]
_MOUNT = {"-m": ("mountpoint", "one"), "-r": ("readonly", "flag"), "--ro": ("readonly", "flag")}
VERBS: dict[str, _Spec] = {
    "set-attr": ("set_attr", {"-A": ("attr", "one"), "-V": ("value", "one")}),
    "set-attribute": ("set_attr", {"-A": ("attr", "one"), "-V": ("value", "one")}),
    "set-cmd": ("set_cmd", {}),  # `set-cmd -c REST OF LINE`, taken as it is (pot's rule)
    "set-env": ("set_env", {"-E": ("env", "many")}),
    "copy-in": ("copy_in", {"-s": ("source", "one"), "-d": ("dest", "one"), "-c": ("create_parents", "flag")}),
    "copy-in-flv": ("copy_in", {"-s": ("source", "one"), "-d": ("dest", "one"), "-c": ("create_parents", "flag")}),
    "mount-in": ("mount_in", {"-d": ("hostdir", "one"), **_MOUNT}),
    "add-fscomp": ("add_fscomp", {"-f": ("fscomp", "one"), **_MOUNT}),
    "export-ports": ("export_ports", {"-e": ("ports", "many")}),
}
_REQUIRED = {"set_attr": ("attr", "value"), "set_env": ("env",), "copy_in": ("source", "dest"),
             "mount_in": ("hostdir", "mountpoint"), "add_fscomp": ("fscomp", "mountpoint"), "export_ports": ("ports",)}


@dataclass(frozen=True)
class Call:
    """One line of a command file: `method(pot, **args)` of the Client."""

    where: str  # "flavour NAME line N"
    text: str
    method: str
    args: dict[str, Any]


@dataclass
class Flavour:
    name: str
    directory: str
    calls: list[Call] = field(default_factory=list)
    script: str | None = None  # the path of NAME.sh


def directory(cfg: Config) -> str:
    return cfg.flavours_dir or DEFAULT_DIR[cfg.host]


def find(cfg: Config, name: str) -> Flavour:
    """NAME: a path if it has a '/', else a name in the flavours directory; NAME.sh is its
    script (or NAME itself when it ends in .sh). At least one of the two must exist."""
    if not name or "\0" in name or len(name.encode()) >= 4096:
        raise UsageError(f"invalid flavour {short(name)}")
    if "/" in name:
        path = os.path.abspath(name)
    else:
        if name in (".", "..") or not name.isprintable():
            raise UsageError(f"invalid flavour name {short(name)}")
        path = os.path.join(directory(cfg), name)
    label = os.path.basename(path).removesuffix(".sh")
    fl = Flavour(label, os.path.dirname(path))
    commands = None if name.endswith(".sh") else path
    script = path if name.endswith(".sh") else path + ".sh"
    found = False
    if commands and os.path.isfile(commands):
        fl.calls = parse(label, _read(commands, label), fl.directory)
        found = True
    if os.path.isfile(script):
        _read(script, label)
        fl.script = script
        found = True
    if not found:
        where = short(path) if "/" in name else f"{short(name)} in {short(directory(cfg))}"
        raise UsageError(f"no flavour {where} (neither the file of commands nor its .sh script)")
    return fl


def _read(path: str, label: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except OSError as e:
        raise UsageError(f"flavour {label}: cannot read {short(path)}: {e.strerror}") from None
    if len(data) > MAX_FILE:
        raise UsageError(f"flavour {label}: {short(path)} is larger than {MAX_FILE >> 20} MiB")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise UsageError(f"flavour {label}: {short(path)} is not UTF-8 text") from None


def parse(label: str, text: str, home: str) -> list[Call]:
    """The calls of a command file; blank lines and '#' comments are skipped."""
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise UsageError(f"flavour {label} has more than {MAX_LINES} lines")
    calls = []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            calls.append(_line(f"flavour {label} line {number}", stripped, home))
    return calls


def _line(where: str, line: str, home: str) -> Call:
    verb, _, rest = line.partition(" ")
    if verb not in VERBS:
        raise UsageError(f"{where}: {short(verb)} is not allowed in a flavour (only {', '.join(VERBS)})")
    method, options = VERBS[verb]
    if verb == "set-cmd":
        rest = rest.strip()
        if not rest.startswith("-c ") or not rest[3:].strip():
            raise UsageError(f"{where}: set-cmd takes '-c COMMAND' (the rest of the line)")
        return Call(where, line, method, {"cmd": rest[3:].strip()})
    try:
        words = shlex.split(rest, comments=False)
    except ValueError as e:
        raise UsageError(f"{where}: {e}") from None
    args: dict[str, Any] = {}
    it = iter(words)
    for word in it:
        if word == "-p":
            raise UsageError(f"{where}: -p: a flavour's commands are for its own pot only")
        if word not in options:
            raise UsageError(f"{where}: {verb} has no option {short(word)} in a flavour")
        key, kind = options[word]
        if kind == "flag":
            args[key] = True
            continue
        value = next(it, None)
        if value is None:
            raise UsageError(f"{where}: {word} needs a value")
        if kind == "many":
            args.setdefault(key, []).append(value)
        elif key in args:
            raise UsageError(f"{where}: {word} is given twice")
        else:
            args[key] = value
    missing = [k for k in _REQUIRED.get(method, ()) if k not in args]
    if missing:
        flags = [o for o, (k, _) in options.items() if k in missing]
        raise UsageError(f"{where}: {verb} needs {' and '.join(flags)}")
    if method == "set_env":
        pairs = {}
        for pair in args["env"]:
            key, eq, value = pair.partition("=")
            if not eq or not key:
                raise UsageError(f"{where}: -E takes KEY=VALUE, not {short(pair)}")
            pairs[key] = value
        args["env"] = pairs
    if verb == "copy-in-flv":
        source = args["source"]
        if source.startswith("/") or ".." in source.split("/"):
            raise UsageError(f"{where}: copy-in-flv takes a path inside the flavour's directory")
        args["source"] = os.path.join(home, source)
    return Call(where, line, method, args)

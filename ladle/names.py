"""Validation of every name and in-pot path that comes from a user (DESIGN §10)."""

import os
import re

from ladle.errors import UsageError

# Pot names also become jail names, where '.' separates a hierarchy, so pots may not contain it.
_POT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Paths must work on both hosts: FreeBSD's PATH_MAX is 1024 (Linux's 4096), NAME_MAX 255 on both.
PATH_MAX = 1024
NAME_MAX = 255
# One argument to execve(2): Linux refuses a longer one (MAX_ARG_STRLEN is 128 KiB), and a pot's
# command is one (`sh -c CMD`).
MAX_ARG = 65536


def _check(kind: str, name: str, pattern: re.Pattern[str], rule: str) -> str:
    if not name:
        raise UsageError(f"{kind} name must not be empty")
    if len(name) > 63:
        raise UsageError(f"{kind} name {short(name)} is too long (at most 63 characters)")
    if not pattern.fullmatch(name):
        raise UsageError(f"invalid {kind} name {name!r}: {rule}")
    return name


def pot_name(name: str) -> str:
    """A pot name: letters, digits, '_' and '-', starting with a letter or digit, and not all
    digits: jail(8) and jexec(8) read an all-digit name as a jail ID (`stop 5` could hit jail 5)."""
    _check("pot", name, _POT, "use letters, digits, '_' or '-', starting with a letter or digit")
    if name.isdigit():
        raise UsageError(f"invalid pot name {name!r}: not all digits (FreeBSD reads those as jail IDs)")
    return name


def name(kind: str, value: str) -> str:
    """A base, fscomp or snapshot name: like a pot name, and '.' is allowed too."""
    return _check(kind, value, _NAME, "use letters, digits, '.', '_' or '-', starting with a letter or digit")


def check(kind: str, *values: str | None) -> None:
    """Check each of `values` that was given (not None) as a `kind` name (pot, base, fscomp or
    snapshot). The library does before anything else: a bad name never reaches a lock's path."""
    for value in values:
        if value is None:
            continue
        if not isinstance(value, str):
            raise UsageError(f"{kind} name must be a string, not {type(value).__name__}")
        if kind == "pot":
            pot_name(value)
        else:
            name(kind, value)


def label(kind: str, value: str) -> str:
    """Free text shown in listings (a base's release label): printable, one short line."""
    if not value.strip():
        raise UsageError(f"{kind} must not be empty")
    if len(value) > 63:
        raise UsageError(f"{kind} {short(value)} is too long (at most 63 characters)")
    if not value.isprintable() or " " in value:
        raise UsageError(f"{kind} {short(value)} must not contain spaces or control characters")
    return value


def text(kind: str, value: str, *, empty: bool = False) -> str:
    """A command or value passed to a program: at most MAX_ARG bytes, no NUL (execve ends it
    there), and not empty unless `empty`."""
    if not empty and not value.strip():
        raise UsageError(f"{kind} must not be empty")
    _utf8_without_nul(kind, value)
    if len(value.encode()) > MAX_ARG:
        raise UsageError(f"{kind} is too long (at most {MAX_ARG} bytes)")
    return value


def count(kind: str, value: int, maximum: int) -> int:
    """A whole number from 0 to `maximum` (a bool or a float is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise UsageError(f"{kind} takes a whole number from 0 to {maximum}, not {short(str(value))}")
    return value


def host_path(kind: str, path: str) -> str:
    """A path on the host (a directory to mount, a file to copy, a tarball): given, no NUL and
    within PATH_MAX; '' would silently mean the current directory."""
    if not path:
        raise UsageError(f"{kind} must not be empty")
    _utf8_without_nul(kind, path)
    if len(path.encode()) >= 4096:  # Linux's PATH_MAX
        raise UsageError(f"{kind} {short(path)} is too long")
    return path


def _utf8_without_nul(kind: str, value: str) -> None:
    """What the state database can store (UTF-8 text) and a C string can carry (no NUL)."""
    if "\0" in value:
        raise UsageError(f"{kind} must not contain a NUL byte")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise UsageError(f"{kind} {short(value)} is not valid UTF-8") from None


def env_pair(pair: str) -> tuple[str, str]:
    """Split `KEY=value`; the key must be a valid shell variable name, and the whole entry is one
    string to execve(2), so it is bounded as one (key included)."""
    key, sep, value = pair.partition("=")
    if not sep or not _ENV_KEY.fullmatch(key):
        raise UsageError(f"invalid environment entry {short(pair)}: expected KEY=value")
    text(f"the environment entry {short(key)}", pair)
    return key, value


def mountpoint(path: str, kind: str = "mountpoint", *, spaces: bool = False) -> str:
    """An absolute path inside a pot, normalised, that is not '/' and never climbs out with '..';
    `kind` names it in errors. A mountpoint has no spaces (fstab(5) and jail(8)'s mount.fstab
    split on them); a path to copy (`spaces`) may."""
    if not path.startswith("/"):
        raise UsageError(f"{kind} {short(path)} must be an absolute path inside the pot")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"{kind} {short(path)} must not contain '..'")
    if not parts:
        raise UsageError(f"{kind} must not be '/'")
    if (" " in path and not spaces) or not path.isprintable():
        raise UsageError(f"{kind} {short(path)} must not contain {'' if spaces else 'spaces or '}control characters")
    if any(len(os.fsencode(p)) > NAME_MAX for p in parts):
        raise UsageError(f"{kind} {short(path)} has a component longer than {NAME_MAX} bytes")
    normal = "/" + "/".join(parts)
    if len(os.fsencode(normal)) >= PATH_MAX:
        raise UsageError(f"{kind} {short(path)} is too long (under {PATH_MAX} bytes)")
    return normal


def shown(value: str) -> str:
    """`value` in a one-line message: as it is when printable, else quoted with its escapes (a
    path may hold a newline)."""
    return value if value.isprintable() else short(value)


def short(value: str, limit: int = 40) -> str:
    """`value` quoted for a one-line message, cut if long."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"

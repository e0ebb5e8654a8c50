"""Validation of every name and in-pot path that comes from a user (DESIGN §10)."""

import re

from ladle.errors import UsageError

# Pot names also become jail names, where '.' separates a hierarchy, so pots may not contain it.
_POT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check(kind: str, name: str, pattern: re.Pattern[str], rule: str) -> str:
    if not name:
        raise UsageError(f"{kind} name must not be empty")
    if len(name) > 63:
        raise UsageError(f"{kind} name {name[:20]!r}... is too long (at most 63 characters)")
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


def env_pair(pair: str) -> tuple[str, str]:
    """Split `KEY=value`; the key must be a valid shell variable name."""
    key, sep, value = pair.partition("=")
    if not sep or not _ENV_KEY.fullmatch(key):
        raise UsageError(f"invalid environment entry {pair!r}: expected KEY=value")
    return key, value


def mountpoint(path: str) -> str:
    """An absolute path inside a pot, normalised, that is not '/' and never climbs out with '..'."""
    if not path.startswith("/"):
        raise UsageError(f"mountpoint {path!r} must be an absolute path inside the pot")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"mountpoint {path!r} must not contain '..'")
    if not parts:
        raise UsageError("mountpoint must not be '/'")
    if any(c in path for c in "\n\t\0 "):
        raise UsageError(f"mountpoint {path!r} must not contain spaces or control characters")
    return "/" + "/".join(parts)

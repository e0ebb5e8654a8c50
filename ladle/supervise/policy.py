"""Restart policies and healthcheck timing: what the monitor decides when a pot ends or a check
fails, and the parsing the engine checks user input with (so both read values the same way).

A policy is the pot's attribute `restart`: `no`, `on-failure[:N]`, `always` or `unless-stopped`.
It applies when a pot ends by itself (a non-persistent pot's command exits, or its pid 1 dies),
never after `ladle stop`. `always` and `unless-stopped` differ only at `ladle boot` (Docker's
daemon start): an `unless-stopped` pot is started again only if it was not stopped by hand.
"""

from __future__ import annotations

import re

from ladle.errors import UsageError

POLICIES = ("no", "on-failure", "always", "unless-stopped")
FIRST_DELAY = 0.1  # seconds before the first restart; doubled for each quick one after it
MAX_DELAY = 30.0
RESET_AFTER = 10.0  # a run this long was not a crash loop: the back-off starts over
MAX_RETRIES = 1_000_000
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_DURATION = 86400.0  # a day: longer is a mistake


def parse(value: str) -> str:
    """A policy as stored: `no`, `on-failure` or `on-failure:N`, `always`, `unless-stopped`."""
    text = value.strip().lower()
    kind, sep, count = text.partition(":")
    if kind not in POLICIES or (sep and kind != "on-failure"):
        raise UsageError(f"attribute restart takes no, on-failure[:N], always or unless-stopped, not {value!r}")
    if sep:
        if not count.isascii() or not count.isdigit() or not 0 < int(count) <= MAX_RETRIES:
            raise UsageError(f"restart on-failure:N takes N from 1 to {MAX_RETRIES}, not {count!r}")
        return f"on-failure:{int(count)}"
    return kind


def restarts(policy: str, code: int | None, done: int) -> bool:
    """Whether a pot that ended by itself with `code` (None: unknown) is started again, after
    `done` restarts."""
    kind, _, count = policy.partition(":")
    if kind in ("always", "unless-stopped"):
        return True
    if kind == "on-failure":
        return code != 0 and (not count or done < int(count))
    return False


def delay(streak: int) -> float:
    """Seconds before the next restart, after `streak` quick restarts in a row."""
    return min(MAX_DELAY, FIRST_DELAY * 2.0 ** min(streak, 32))


def duration(what: str, value: str, zero: bool = False) -> float:
    """`30s`, `500ms`, `2m`, `1h` (a bare number is seconds) as seconds, from 0 (if `zero`) or
    above, to a day."""
    text = value.strip().lower()
    if text.replace(".", "", 1).isdigit() and text.isascii():
        text += "s"
    m = _DURATION.match(text) if text.isascii() else None
    if m is None:
        raise UsageError(f"{what} takes a duration like 30s, 500ms or 2m, not {value!r}")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_DURATION or (seconds == 0 and not zero):
        low = "0" if zero else "more than 0"
        raise UsageError(f"{what} takes {low} to 24h, not {value!r}")
    return seconds

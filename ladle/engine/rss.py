"""Resource limits of pots: their values checked, and resolved for the driver at each start.

A pot's limits are attributes `rss.cpus`, `rss.memory`, `rss.pids` and `rss.pcpu` (pot's
`pot.rss.cpus` and `pot.rss.memory`, plus two), set only by `set-rss`. At a start they are
resolved (`resolve`) into what the driver enforces: memory in bytes, a pids limit (the pot's,
else the configuration's `pids_limit`, so no pot can fork-bomb the host unless its operator
says `--pids 0`), a CPU share in percent of one CPU, and a CPU list: an explicit one as given,
a count as the CPUs that the fewest pinned pots use (pot's `potcpu get-cpu`).
"""

from __future__ import annotations

import re
from typing import Any

from ladle.config import parse_size
from ladle.engine.core import Engine
from ladle.errors import UsageError

KEYS = {"cpus": "rss.cpus", "memory": "rss.memory", "pids": "rss.pids", "pcpu": "rss.pcpu"}
MIN_MEMORY = 1 << 20  # less cannot hold even a shell; a smaller value is a mistake
MAX_MEMORY = 1 << 50  # when the host's is not known (a dry run for another host)
MAX_PIDS = 4_194_304  # Linux's PID_MAX_LIMIT


def parse_memory(text: str, host_memory: int | None) -> str | None:
    """-M: a size with K, M or G (pot's `^[0-9]+[bBkKmMgG]?$`), 'none' to lift the limit."""
    if text.strip().lower() == "none":
        return None
    value = text.strip()
    if not re.fullmatch(r"[0-9]{1,20}[bBkKmMgG]?", value):
        raise UsageError(f"-M takes a size such as 512M or 2G (bytes, or K, M, G), or none; not {text!r}")
    size = parse_size(value, "-M")
    most = host_memory or MAX_MEMORY
    if not MIN_MEMORY <= size <= most:
        raise UsageError(f"-M {text}: a memory limit must be from 1M to {most >> 20}M (this host's memory)"
                         if host_memory else f"-M {text}: a memory limit must be from 1M to {MAX_MEMORY >> 20}M")
    return str(size)


def parse_cpus(text: str, host_cpus: list[int] | None) -> str | None:
    """-C: a count N (balanced at each start) or a list with a comma or a range ('0,2', '1-3',
    '2,' for CPU 2 alone); 'none' to lift it. Stored as N, or the list normalised."""
    value = text.strip().lower()
    if value == "none":
        return None
    if value.isascii() and value.isdigit():
        count = int(value)
        if count < 1 or (host_cpus is not None and count > len(host_cpus)):
            has = f" (this host has {len(host_cpus)})" if host_cpus is not None else ""
            raise UsageError(f"-C {text}: a CPU count must be from 1 to the host's CPUs{has}")
        return str(count)
    cpus: set[int] = set()
    try:
        for part in value.split(","):
            if not part:
                continue
            low, dash, high = part.partition("-")
            if not low.isdigit() or (dash and not high.isdigit()):
                raise ValueError
            cpus |= set(range(int(low), int(high or low) + 1))
    except ValueError:
        cpus = set()
    if not cpus or len(value) > 256:
        raise UsageError(f"-C takes a CPU count or a list such as 0,2 or 1-3, or none; not {text!r}")
    missing = sorted(cpus - set(host_cpus)) if host_cpus is not None else []
    if missing:
        raise UsageError(f"-C {text}: this host has no CPU {missing[0]} (it has {_ranges(host_cpus or [])})")
    return ",".join(str(c) for c in sorted(cpus)) + ("," if len(cpus) == 1 else "")


def parse_pids(text: str) -> str | None:
    """--pids: the most processes (and threads) the pot may have; 0 for no limit at all, 'none'
    for the configuration's default."""
    value = text.strip().lower()
    if value == "none":
        return None
    if not value.isascii() or not value.isdigit() or int(value) > MAX_PIDS:
        raise UsageError(f"--pids takes a number from 0 (no limit) to {MAX_PIDS}, or none; not {text!r}")
    return str(int(value))


def parse_pcpu(text: str, host_cpus: list[int] | None) -> str | None:
    """--pcpu: a share of CPU time in percent of one CPU (200: two CPUs' worth); 'none' to lift it."""
    value = text.strip().lower()
    if value == "none":
        return None
    most = 100 * (len(host_cpus) if host_cpus else 1024)
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= most:
        raise UsageError(f"--pcpu takes a percentage of one CPU from 1 to {most}, or none; not {text!r}")
    return str(int(value))


def _ranges(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)


def balance(host_cpus: list[int], pinned: list[list[int]], count: int) -> list[int] | None:
    """The `count` CPUs that the fewest pinned pots use (lowest numbers first among equals);
    None when the count is every CPU, which pins nothing (as potcpu)."""
    if count >= len(host_cpus):
        return None
    load = {c: 0 for c in host_cpus}
    for cpus in pinned:
        for c in cpus:
            if c in load:
                load[c] += 1
    return sorted(sorted(host_cpus, key=lambda c: (load[c], c))[:count])


def resolve(eng: Engine, pot: dict[str, Any]) -> dict[str, Any]:
    """The limits a start (or set-rss on a running pot) enforces, from the pot's attributes."""
    attrs = pot["attrs"]
    out: dict[str, Any] = {"memory": None, "pids": None, "pcpu": None, "cpus": None}
    if attrs.get(KEYS["memory"]):
        out["memory"] = int(attrs[KEYS["memory"]])
    pids = attrs.get(KEYS["pids"])
    out["pids"] = int(pids) if pids else eng.cfg.pids_limit
    if not pids:
        out["defaults"] = ["pids"]  # the configuration's, not the pot's (FreeBSD skips it without racct)
    if attrs.get(KEYS["pcpu"]):
        out["pcpu"] = int(attrs[KEYS["pcpu"]])
    cpus = attrs.get(KEYS["cpus"], "")
    if "," in cpus or "-" in cpus:
        out["cpus"] = [int(c) for c in cpus.split(",") if c]
    elif cpus:
        host = None if eng.offline else eng.host.host_cpus()
        if host is None:  # planning for another host: its CPUs are not known, the first ones stand in
            host = list(range(int(cpus) + 1))
        out["cpus"] = balance(host, [] if eng.offline else eng.host.pinned(pot["name"]), int(cpus))
    return out



"""Resource verbs: pot's set-rss and get-rss, and stats and ps (limits themselves: `rss`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ladle.engine import lifecycle, runs
from ladle.engine.core import Engine
from ladle.engine.rss import KEYS, parse_cpus, parse_memory, parse_pcpu, parse_pids, resolve
from ladle.errors import StateError, UsageError

if TYPE_CHECKING:
    from ladle._models import PotStats, PotSummary, Process, Resources
    from ladle.plan.steps import Step

SAMPLE = 0.5  # seconds between the two readings a one-shot CPU percentage is taken from


def set_rss(eng: Engine, name: str, cpus: str | None, memory: str | None, pids: str | None,
            pcpu: str | None) -> str:
    """pot's set-rss: store the limits, and apply them at once to a running pot."""
    from ladle.state.steps import put

    given = {"cpus": cpus, "memory": memory, "pids": pids, "pcpu": pcpu}
    if all(v is None for v in given.values()):
        raise UsageError("set-rss needs at least one of -C, -M, --pids, --pcpu")
    host_cpus = None if eng.offline else eng.host.host_cpus()
    parsed = {"cpus": parse_cpus(cpus, host_cpus) if cpus is not None else "",
              "memory": parse_memory(memory, None if eng.offline else eng.host.host_memory())
              if memory is not None else "",
              "pids": parse_pids(pids) if pids is not None else "",
              "pcpu": parse_pcpu(pcpu, host_cpus) if pcpu is not None else ""}
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        attrs = dict(pot["attrs"])
        for key, value in parsed.items():
            if value == "":
                continue  # not given: unchanged
            if value is None:
                attrs.pop(KEYS[key], None)
            else:
                attrs[KEYS[key]] = value
        new = {**pot, "attrs": attrs}
        steps: list[Step] = [put("pots", {"name": name}, new, pot)]
        run = runs.live_run(eng, name)
        if run is not None:
            steps += eng.host.limits_plan(lifecycle.spec(eng, new), run, resolve(eng, new), resolve(eng, pot))
        eng.execute("set-rss", f"pot:{name}", steps)
    shown = ", ".join(f"{k}={(v or 'none').rstrip(',')}" for k, v in parsed.items() if v != "")
    return f"pot {name}: {shown}" + (" (applied now)" if run is not None else " (applied at its next start)")


def _running(eng: Engine, name: str) -> tuple[Any, Any]:
    pot = eng.pot(name)
    run = runs.live_run(eng, name)
    if run is None:
        raise StateError(f"pot {name} is not running")
    return lifecycle.spec(eng, pot), run


def _sample(eng: Engine, names: list[str], interval: float) -> dict[str, dict[str, Any]]:
    """Two readings of each pot's usage, `interval` apart: the CPU percentage is the CPU time
    between them over the time between them (100: one CPU), unless the host gives it (rctl)."""
    specs = {n: _running(eng, n) for n in names}
    first = {n: (time.monotonic(), eng.host.usage(*specs[n])) for n in names}
    if any("pcpu" not in u for _, u in first.values()):
        time.sleep(interval)
    out = {}
    for n in names:
        t0, u0 = first[n]
        u1 = eng.host.usage(*specs[n]) if "pcpu" not in u0 else u0
        elapsed = time.monotonic() - t0
        pcpu = u0["pcpu"] if "pcpu" in u0 else (u1["cpu_usec"] - u0["cpu_usec"]) / 1e4 / max(elapsed, 1e-6)
        out[n] = {**u1, "percent": max(0.0, pcpu)}
    return out


def get_rss(eng: Engine, name: str) -> Resources:
    """pot's get-rss: the running pot's limits and what it uses."""

    return _resources(eng, name, eng.pot(name), _sample(eng, [name], SAMPLE)[name])


def _resources(eng: Engine, name: str, pot: dict[str, Any], use: dict[str, Any]) -> Resources:
    from ladle._models import Resources

    lim = resolve(eng, pot)
    return Resources(name=name, memory_limit=lim["memory"], pids_limit=lim["pids"] or None,
                     pcpu_limit=lim["pcpu"], cpus=pot["attrs"].get(KEYS["cpus"], "").rstrip(",") or None,
                     memory=use["memory"], swap=use.get("swap", 0), pids=use["pids"],
                     cpu_percent=round(use["percent"], 1), cpu_seconds=use.get("cpu_usec", 0) / 1e6,
                     clock_mhz=use.get("mhz", 0), oom_kills=use.get("oom_kills", 0))


def _running_names(eng: Engine) -> list[str]:
    rows = eng.store.all("runs", order="pot", state="running")
    return [r["pot"] for r in rows if runs.live_run(eng, r["pot"]) is not None]


def show(eng: Engine, name: str | None) -> list[PotSummary]:
    """pot's `show`: for each running pot (or pot `name`, which must run) its limits and usage
    (one sample for all of them), addresses and exports."""
    from ladle._models import PotSummary
    from ladle.engine.show import info

    names = [name] if name else _running_names(eng)
    got = _sample(eng, names, SAMPLE)
    out = []
    for n in names:
        about = info(eng, n)
        out.append(PotSummary(name=n, resources=_resources(eng, n, eng.pot(n), got[n]),
                              addresses=list(about.addresses), ports=list(about.ports)))
    return out


def stats(eng: Engine, names: list[str], interval: float = SAMPLE) -> list[PotStats]:
    """`stats`: CPU %, memory and pids of the running pots named (all running ones if none)."""
    from ladle._models import PotStats

    if not names:
        names = _running_names(eng)
    else:
        for n in names:
            eng.pot(n)
    got = _sample(eng, names, interval)
    out = []
    for n in names:
        lim = resolve(eng, eng.pot(n))
        u = got[n]
        out.append(PotStats(name=n, cpu_percent=round(u["percent"], 1), memory=u["memory"],
                            memory_limit=lim["memory"], pids=u["pids"], pids_limit=lim["pids"] or None))
    return out


def ps(eng: Engine, name: str) -> list[Process]:
    """The pot's processes, each with its user's name from the pot's own /etc/passwd."""
    from ladle._models import Process

    s, run = _running(eng, name)
    got = eng.host.processes(s, run)
    users = user_names(eng.host.passwd(s, run) or b"")
    return [Process(**p, user=users.get(p["uid"], str(p["uid"]))) for p in got]


def user_names(passwd: bytes) -> dict[int, str]:
    """uid to name from a passwd file the pot wrote: the first name of a uid, and only names
    that are plain words (no terminal escapes reach the host's screen), else the uid stays."""
    import re

    word = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?")
    out: dict[int, str] = {}
    for line in passwd.decode(errors="replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isascii() and parts[2].isdigit() and word.fullmatch(parts[0]):
            out.setdefault(int(parts[2]), parts[0])
    return out

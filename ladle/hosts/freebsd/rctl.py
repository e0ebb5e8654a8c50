"""A jail's resource limits and usage: rctl(8) rules and cpuset(1), as pot's set-rss and get-rss.

Limits are `deny` rules on the jail: `memoryuse` (resident memory; an allocation past it fails,
nothing is killed), `maxproc` (a fork past it fails with EAGAIN), `pcpu` (percent of one CPU; for
pcpu, deny throttles). rctl needs racct, enabled only at boot (`kern.racct.enable=1` in
/boot/loader.conf): without it an explicit limit refuses the start, and the configuration's
default pids limit is skipped with a warning. Caveat on `pcpu`: racct measures it as a decaying
average over the last seconds, so a jail's short bursts run past it and throttling sets in
late; it shares CPU time, unlike a cpuset, which pins. Unlike pot, ladle removes a jail's rules
at stop (`rctl -r jail:NAME`): rules outlive the jail, and the next jail of that name would
inherit them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from ladle import _log
from ladle.errors import CommandFailed, HostError
from ladle.plan.runner import Runner
from ladle.plan.steps import Command, Context, Step

RESOURCES = (("memory", "memoryuse"), ("pids", "maxproc"), ("pcpu", "pcpu"))
RACCT_NOTE = "# rctl needs racct: `sysctl -n kern.racct.enable` must be 1 (a boot-time tunable in /boot/loader.conf)"


def rule_argvs(name: str, limits: dict[str, Any]) -> list[list[str]]:
    return [["rctl", "-a", f"jail:{name}:{resource}:deny={limits[key]}"]
            for key, resource in RESOURCES if limits.get(key)]


def racct_on(runner: Runner) -> bool:
    try:
        return runner.run(["sysctl", "-n", "kern.racct.enable"]).strip() == "1"
    except CommandFailed:
        return False


@dataclass
class JailLimits(Command):
    """The jail's rctl rules and cpuset (after `jail -c`, before its command runs; or at once on
    a running jail, `replace` removing its old rules first). Limits named in `limits["defaults"]`
    come from the configuration, not the pot: without racct they are skipped with a warning."""

    name: str
    limits: dict[str, Any]
    replace: bool = False
    previous: dict[str, Any] | None = None

    def argvs(self, rules: bool = True) -> list[list[str]]:
        out = [["sysctl", "-n", "kern.racct.enable"]]
        if rules:
            out += [["rctl", "-r", f"jail:{self.name}"]] if self.replace else []
            out += rule_argvs(self.name, self.limits)
        if self.limits.get("cpus"):
            out.append(["cpuset", "-l", ",".join(str(c) for c in self.limits["cpus"]), "-j", self.name])
        return out

    def render(self) -> list[str]:
        return [RACCT_NOTE, *super().render()]

    def apply(self, ctx: Context) -> None:
        explicit = [k for k, _ in RESOURCES if self.limits.get(k) and k not in self.limits.get("defaults", [])]
        on = racct_on(ctx.runner)
        if not on and explicit:
            raise HostError(f"pot {self.name}: limiting {', '.join(explicit)} needs rctl, which is off: set"
                            " kern.racct.enable=1 in /boot/loader.conf and reboot")
        if not on and any(self.limits.get(k) for k, _ in RESOURCES):
            _log.warning(f"pot {self.name}: racct is off (kern.racct.enable=0): no pids limit")
        for argv in self.argvs(rules=on)[1:]:
            ctx.runner.run(argv)

    def inverse(self) -> list[Step]:
        if self.previous is not None:
            return [JailLimits(self.name, self.previous, True)]
        return [JailLimitsRemove(self.name)]


@dataclass
class JailLimitsRemove(Command):
    """Remove the jail's rctl rules (they outlive the jail); one that fails (racct off: there are
    none) is no error."""

    name: str

    def argvs(self) -> list[list[str]]:
        return [["rctl", "-r", f"jail:{self.name}"]]

    def apply(self, ctx: Context) -> None:
        with contextlib.suppress(CommandFailed):
            ctx.runner.run(self.argvs()[0])


def parse_mask(text: str) -> list[int]:
    """`cpuset -g -j NAME`: the line `jail JID mask: 0, 1, 2` (ranges like `0-3` read too); the
    domain policy line newer releases add is skipped."""
    for line in text.splitlines():
        head, sep, tail = line.partition("mask:")
        if not sep or "domain" in head:
            continue
        cpus: set[int] = set()
        for part in tail.replace(" ", "").split(","):
            low, _, high = part.partition("-")
            if low.isdigit() and (not high or high.isdigit()):
                cpus |= set(range(int(low), int(high or low) + 1))
        return sorted(cpus)
    return []


def pinned(runner: Runner, names: set[str], host_cpus: list[int]) -> list[list[int]]:
    """The CPU lists of the jails `names` pinned to fewer than all the host's CPUs (as potcpu
    counts them); a jail that went away meanwhile is skipped."""
    out = []
    for name in sorted(names):
        try:
            cpus = parse_mask(runner.run(["cpuset", "-g", "-j", name]))
        except CommandFailed:
            continue
        if cpus and set(host_cpus) - set(cpus):
            out.append(cpus)
    return out


def parse_usage(text: str) -> dict[str, int]:
    """`rctl -u jail:NAME`: one resource=amount a line."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and value.isdigit():
            out[key] = int(value)
    return out


def usage(runner: Runner, name: str) -> dict[str, float]:
    """What the jail uses, as `get-rss` and `stats` want it (pcpu as rctl gives it)."""
    try:
        got = parse_usage(runner.run(["rctl", "-u", f"jail:{name}"]))
    except CommandFailed as e:
        raise HostError(f"pot {name}: rctl -u failed (is kern.racct.enable=1?): {e}") from None
    try:
        mhz = float(runner.run(["sysctl", "-n", "hw.clockrate"]).strip() or 0)
    except (CommandFailed, ValueError):
        mhz = 0.0
    return {"memory": got.get("memoryuse", 0), "swap": got.get("swapuse", 0), "pids": got.get("maxproc", 0),
            "pcpu": got.get("pcpu", 0), "cpu_usec": got.get("cputime", 0) * 1_000_000, "mhz": mhz, "oom_kills": 0}


def processes(runner: Runner, name: str) -> list[dict[str, Any]]:
    """`ps -ax -J NAME`: a jail's processes (pids are the host's: jails share its pid space)."""
    out = []
    text = runner.run(["ps", "-ax", "-J", name, "-o", "pid=", "-o", "uid=", "-o", "command="])
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            pid, command = int(parts[0]), parts[2] if len(parts) > 2 else ""
            out.append({"pid": pid, "host_pid": pid, "uid": int(parts[1]), "command": command})
    return out

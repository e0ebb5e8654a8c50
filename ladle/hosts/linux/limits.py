"""A pot's resource limits and usage, in cgroups of either layout.

The pot's cgroup2 group (`cgroup.py`) tracks its processes everywhere. Where a controller sits
depends on the host: on a v2 host (most distributions) memory, pids, cpu and cpuset are enabled in
`cgroup.subtree_control` of `ladle` and `ladle/KEY`, and the limits are files of the pot's cgroup2
group; on a v1 or hybrid host (no controller on cgroup2) each controller has its own hierarchy,
and the pot has a group of the same relative path in each (`<mount>/ladle/KEY/POT`), which every
process of the pot joins as it joins the cgroup2 group (`cgroup.join`, `cgroup.procs_files`).

Limits, as the engine resolves them (`engine/resources.py`): `memory` in bytes (swap included:
v1 memory.memsw.limit_in_bytes equal to the limit, v2 memory.swap.max 0), `pids` (0: none),
`pcpu` in percent of one CPU (a CFS quota per 100 ms period), `cpus` a list of CPU numbers.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from typing import Any

from ladle.errors import HostError

CONTROLLERS = ("memory", "pids", "cpu", "cpuset")
ROOT_XATTR = "trusted.ladle.root"  # on a state root's group, v1 and cgroup2 alike: whose it is
PERIOD = 100_000  # µs: the CFS period a pcpu quota is a share of


def v1_mounts(mountinfo: str) -> dict[str, str]:
    """Where each v1 controller of CONTROLLERS is mounted, from a /proc/PID/mountinfo text."""
    found: dict[str, str] = {}
    for line in mountinfo.splitlines():
        fields, sep, fs = line.partition(" - ")
        parts = fs.split()
        if not sep or parts[:1] != ["cgroup"] or len(parts) < 3:
            continue
        for option in parts[2].split(","):
            if option in CONTROLLERS and option not in found:
                found[option] = fields.split()[4].replace("\\040", " ")
    return found


@functools.cache
def v1() -> dict[str, str]:
    """The v1 controllers of this host (none on a pure v2 host)."""
    try:
        with open("/proc/self/mountinfo") as f:
            return v1_mounts(f.read())
    except OSError:
        return {}


def _split(group: str) -> tuple[str, str]:
    """A ladle group's cgroup2 mount point and its path below it (`ladle/KEY[/POT]`)."""
    top, sep, rest = group.partition("/ladle/")
    if not sep:
        raise HostError(f"{group} is not one of ladle's cgroups")
    return top or "/", "ladle/" + rest


def v1_dirs(group: str) -> dict[str, str]:
    """The v1 counterparts of the cgroup2 group `group` (`<cgroup2>/ladle/KEY/POT`), by controller."""
    rel = _split(group)[1]
    return {c: os.path.join(m, rel) for c, m in v1().items()}


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        what = os.path.basename(path)
        raise HostError(f"cannot set {what} to {value!r}: {e.strerror}"
                        + (" (the pot uses more than that now)" if e.errno == errno.EBUSY else "")) from None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _v2_enable(group: str, wanted: list[str]) -> None:
    """Enable those of `wanted` that the host has for the pot's group: in cgroup.subtree_control
    of every level from the hierarchy's root down to the state root's group (which hold no
    process, as v2 asks). A limit that needs a missing one fails when it is set (`_set`)."""
    top = _split(group)[0]
    try:
        have = _read(os.path.join(top, "cgroup.controllers")).split()
    except OSError:
        return
    level, levels = top, [top]
    for part in os.path.relpath(os.path.dirname(group), top).split("/"):
        level = os.path.join(level, part)
        levels.append(level)
    for level in levels:
        enabled = _read(os.path.join(level, "cgroup.subtree_control")).split()
        todo = " ".join(f"+{c}" for c in wanted if c in have and c not in enabled)
        if todo:
            _write(os.path.join(level, "cgroup.subtree_control"), todo)


def _set(path: str, value: str, needed: bool) -> None:
    """Write a v2 limit file; one the host lacks (no such controller) matters only if a limit is set."""
    if os.path.exists(path):
        _write(path, value)
    elif needed:
        raise HostError(f"cannot set {os.path.basename(path)}: this host's cgroup2 has no such controller enabled")


def prepare(group: str) -> None:
    """Make the pot's v1 groups (each level's cpuset given its parent's CPUs and memory nodes,
    without which no process may join), or enable the controllers on a v2 host."""
    dirs = v1_dirs(group)
    root = b""
    with contextlib.suppress(OSError):
        root = os.getxattr(os.path.dirname(group), ROOT_XATTR)
    for controller, path in dirs.items():
        mount = v1()[controller]
        level = mount
        for part in os.path.relpath(path, mount).split("/"):
            parent, level = level, os.path.join(level, part)
            with contextlib.suppress(FileExistsError):
                os.mkdir(level)
            if level == os.path.dirname(path) and root:
                with contextlib.suppress(OSError):
                    os.setxattr(level, ROOT_XATTR, root)
            if controller == "cpuset":
                for name in ("cpuset.mems", "cpuset.cpus"):
                    if not _read(os.path.join(level, name)):
                        _write(os.path.join(level, name), _read(os.path.join(parent, name)))
    rest = [c for c in CONTROLLERS if c not in dirs]
    if rest:
        _v2_enable(group, rest)


def _file(group: str, controller: str, v1_name: str, v2_name: str) -> str:
    dirs = v1_dirs(group)
    return os.path.join(dirs[controller], v1_name) if controller in dirs else os.path.join(group, v2_name)


def apply(group: str, limits: dict[str, Any]) -> None:
    """Write the limits (an absent or None one: none) into the pot's groups, at once."""
    v1dirs = v1_dirs(group)
    memory = limits.get("memory")
    if "memory" in v1dirs:
        d = v1dirs["memory"]
        memsw = os.path.join(d, "memory.memsw.limit_in_bytes")
        swap = os.path.exists(memsw)
        if swap:
            _write(memsw, "-1")  # memsw >= limit always: lift it, set the limit, then it
        _write(os.path.join(d, "memory.limit_in_bytes"), str(memory) if memory else "-1")
        if swap and memory:
            _write(memsw, str(memory))
    else:
        _set(os.path.join(group, "memory.max"), str(memory) if memory else "max", bool(memory))
        _set(os.path.join(group, "memory.swap.max"), "0" if memory else "max", False)
    pids = limits.get("pids")
    if "pids" in v1dirs:
        _write(os.path.join(v1dirs["pids"], "pids.max"), str(pids) if pids else "max")
    else:
        _set(os.path.join(group, "pids.max"), str(pids) if pids else "max", bool(pids))
    pcpu = limits.get("pcpu")
    quota = str(pcpu * PERIOD // 100) if pcpu else None
    if "cpu" in v1dirs:
        _write(os.path.join(v1dirs["cpu"], "cpu.cfs_period_us"), str(PERIOD))
        _write(os.path.join(v1dirs["cpu"], "cpu.cfs_quota_us"), quota or "-1")
    else:
        _set(os.path.join(group, "cpu.max"), f"{quota or 'max'} {PERIOD}", bool(quota))
    cpus = limits.get("cpus")
    if "cpuset" in v1dirs:
        d = v1dirs["cpuset"]
        parent = os.path.dirname(d)
        _write(os.path.join(d, "cpuset.mems"), _read(os.path.join(parent, "cpuset.mems")))
        _write(os.path.join(d, "cpuset.cpus"), cpu_list(cpus) if cpus else _read(os.path.join(parent, "cpuset.cpus")))
    else:
        _set(os.path.join(group, "cpuset.cpus"), cpu_list(cpus) if cpus else "", bool(cpus))


def render(group: str, limits: dict[str, Any]) -> list[str]:
    """The shell lines that do what `prepare` and `apply` do, on this host's layout."""
    import shlex

    v1dirs = v1_dirs(group)
    lines = [f"mkdir -p {shlex.quote(d)}" for d in v1dirs.values()]
    if "cpuset" in v1dirs:
        lines.append(f"# every level of {shlex.quote(v1dirs['cpuset'])} gets its parent's cpuset.mems and .cpus")
    if not v1dirs:
        lines.append("# + " + " ".join(CONTROLLERS) + " in cgroup.subtree_control of each level above the pot")
    memory, pids, pcpu, cpus = (limits.get(k) for k in ("memory", "pids", "pcpu", "cpus"))
    if "memory" in v1dirs:
        d = v1dirs["memory"]
        lines += [f"echo -1 > {shlex.quote(d + '/memory.memsw.limit_in_bytes')}",
                  f"echo {memory or -1} > {shlex.quote(d + '/memory.limit_in_bytes')}"]
        if memory:
            lines.append(f"echo {memory} > {shlex.quote(d + '/memory.memsw.limit_in_bytes')}")
    else:
        lines += [f"echo {memory or 'max'} > {shlex.quote(group + '/memory.max')}",
                  f"echo {0 if memory else 'max'} > {shlex.quote(group + '/memory.swap.max')}"]
    lines.append(f"echo {pids or 'max'} > {shlex.quote(_file(group, 'pids', 'pids.max', 'pids.max'))}")
    quota = pcpu * PERIOD // 100 if pcpu else None
    if "cpu" in v1dirs:
        d = v1dirs["cpu"]
        lines += [f"echo {PERIOD} > {shlex.quote(d + '/cpu.cfs_period_us')}",
                  f"echo {quota or -1} > {shlex.quote(d + '/cpu.cfs_quota_us')}"]
    else:
        lines.append(f"echo '{quota or 'max'} {PERIOD}' > {shlex.quote(group + '/cpu.max')}")
    if "cpuset" in v1dirs:
        d = v1dirs["cpuset"]
        lines += [f"cat {shlex.quote(os.path.dirname(d) + '/cpuset.mems')} > {shlex.quote(d + '/cpuset.mems')}",
                  (f"echo {cpu_list(cpus)}" if cpus else f"cat {shlex.quote(os.path.dirname(d) + '/cpuset.cpus')}")
                  + f" > {shlex.quote(d + '/cpuset.cpus')}"]
    else:
        lines.append(f"echo {cpu_list(cpus) if cpus else ''!r} > {shlex.quote(group + '/cpuset.cpus')}")
    return lines


def remove(group: str) -> None:
    """Remove the pot's v1 groups (their processes are gone with its cgroup2 group's), then the
    state root's and `ladle`'s if nothing else is in them."""
    import time

    for path in v1_dirs(group).values():
        for attempt in range(50):  # a process just reaped may hold a v1 group a moment longer
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or attempt == 49:
                    raise HostError(f"cannot remove cgroup {path}: {e.strerror}") from None
                time.sleep(0.02)
        for parent in (os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
            with contextlib.suppress(OSError):
                os.rmdir(parent)


def exists(group: str) -> bool:
    return any(os.path.isdir(d) for d in v1_dirs(group).values())


def pot_names(root_group: str) -> set[str]:
    """Pots of a state root (its cgroup2 group `root_group`) that have a v1 group left."""
    found: set[str] = set()
    for d in v1_dirs(root_group).values():
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            found |= {n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n))}
    return found


def cpu_list(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)


def parse_cpu_list(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5] (the kernel's list format)."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        out += range(int(low), int(high or low) + 1)
    return out


def host_cpus() -> list[int]:
    try:
        return parse_cpu_list(_read("/sys/devices/system/cpu/online"))
    except (OSError, ValueError):
        return list(range(os.cpu_count() or 1))


def pinned(group: str) -> list[int] | None:
    """The CPUs the pot is pinned to, or None if it may use all of them."""
    path = _file(group, "cpuset", "cpuset.cpus", "cpuset.cpus")
    try:
        cpus = parse_cpu_list(_read(path))
    except (OSError, ValueError):
        return None
    return cpus if cpus and cpus != host_cpus() else None


def _stat(path: str) -> dict[str, int]:
    out = {}
    with contextlib.suppress(OSError):
        for line in _read(path).splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[key] = int(value)
    return out


def usage(group: str) -> dict[str, int]:
    """What the pot uses now: `memory` (bytes, less the inactive page cache, as `docker stats`),
    `swap`, `pids`, `cpu_usec` (CPU time since it started, from cgroup2's core cpu.stat, which
    a hybrid host keeps too), and `oom_kills`."""
    v1dirs = v1_dirs(group)
    out = {"memory": 0, "swap": 0, "pids": 0, "cpu_usec": _stat(os.path.join(group, "cpu.stat")).get("usage_usec", 0),
           "oom_kills": oom_kills(group)}
    with contextlib.suppress(OSError, ValueError):
        if "memory" in v1dirs:
            d = v1dirs["memory"]
            stat = _stat(os.path.join(d, "memory.stat"))
            used = int(_read(os.path.join(d, "memory.usage_in_bytes")))
            out["memory"] = max(0, used - stat.get("total_inactive_file", 0))
            if os.path.exists(os.path.join(d, "memory.memsw.usage_in_bytes")):
                out["swap"] = max(0, int(_read(os.path.join(d, "memory.memsw.usage_in_bytes"))) - used)
        else:
            stat = _stat(os.path.join(group, "memory.stat"))
            out["memory"] = max(0, int(_read(os.path.join(group, "memory.current"))) - stat.get("inactive_file", 0))
            if os.path.exists(os.path.join(group, "memory.swap.current")):
                out["swap"] = int(_read(os.path.join(group, "memory.swap.current")))
    with contextlib.suppress(OSError, ValueError):
        out["pids"] = int(_read(_file(group, "pids", "pids.current", "pids.current")))
    return out


def clock_mhz() -> float:
    """The first CPU's clock in /proc/cpuinfo (pot's TotalTicks are clock x percent / 100)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1])
    return 0.0


def oom_kills(group: str) -> int:
    """How many of the pot's processes the kernel killed for its memory limit (v1:
    memory.oom_control's oom_kill; v2: memory.events' oom_kill)."""
    v1dirs = v1_dirs(group)
    if "memory" in v1dirs:
        return _stat(os.path.join(v1dirs["memory"], "memory.oom_control")).get("oom_kill", 0)
    return _stat(os.path.join(group, "memory.events")).get("oom_kill", 0)

"""What a test run may leak on the host: mounts, processes in other pid namespaces, network
namespaces, ladle-like interfaces, nftables tables, ladle's cgroups and ZFS datasets. Compared
before and after.

Several test runs may share the machine (helpers working at once): a mount, process or dataset that
belongs to another run (under its pytest base directory, its ZFS roots, its pool) is not ours, so
`claim` names this run's places and the rest of other runs' is left out."""

from __future__ import annotations

import os
import re
import subprocess

# Places that belong to some test run: pytest's base directories, the ZFS tests' roots, their pools.
_RUN_PLACES = re.compile(r"/tmp/pytest-of-[^/]+/pytest-\d+|/tmp/ladle-zfs-\d+-|ladletest\d+")
_ours: list[str] = []


def claim(*places: str) -> None:
    """Name this run's places (its base directory, `ladle-zfs-PID-`, `ladletestPID`)."""
    _ours.extend(places)


def _others(text: str) -> bool:
    """Whether `text` names a place of another test run."""
    return any(m.group(0) not in _ours for m in _RUN_PLACES.finditer(text))


def mounts() -> set[str]:
    with open("/proc/self/mounts") as f:
        found = {" ".join(line.split()[:3]) for line in f}
    return {m for m in found if not _others(m)}


def _ns(pid: str, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def cmdline(pid: str) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def foreign_processes() -> set[str]:
    """Processes in a pid or net namespace other than ours: pots that outlived their test. A pid 1
    still waiting (`ladle-pid1 ROOT`: the spare a monitor keeps for its next start) goes with its
    monitor; the session checks that those are gone (`monitors`)."""
    mine = (_ns("self", "pid"), _ns("self", "net"))
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        theirs = (_ns(pid, "pid"), _ns(pid, "net"))
        if None in theirs or theirs == mine:
            continue
        cmd = cmdline(pid)
        if not cmd or _zombie(pid):  # dead already (an exiting process has no command line yet)
            continue
        if (not cmd.startswith("ladle-pid1 ") and not _others(f"{_lineage(pid)} {_cgroup_root(pid)}")
                and not _elsewhere(pid)):
            found.add(f"{pid} {cmd}")
    return found


def _elsewhere(pid: str) -> bool:
    """Whether a pot's process belongs to a state root outside every test run (a benchmark's, a
    helper's by hand): a monitor of such a root among its ancestors, or, once orphaned, its root
    mount made from such a root's storage. Those are not this run's to leak."""
    if not _ours:
        return False
    lineage = _lineage(pid)
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            root_mount = f.readline()
    except OSError:
        root_mount = ""
    if any(place in lineage or place in root_mount for place in _ours):
        return False
    return "ladle-mon" in lineage or "/storage/" in root_mount


def _lineage(pid: str) -> str:
    """The command lines of a process's ancestors: a pot's reach its monitor or keeper, which name
    their state root."""
    names: list[str] = []
    while pid not in ("0", "1") and len(names) < 64:
        names.append(cmdline(pid) or "")
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                pid = f.read().rpartition(b")")[2].split()[1].decode()  # state, ppid, ...
        except (OSError, IndexError):
            break
    return " ".join(names)


def _cgroup_root(pid: str) -> str:
    """The state root of the ladle cgroup a process is in (a pot's process whose monitor and
    keeper are gone has no lineage left to name it)."""
    from ladle.hosts.linux.cgroup import ROOT_XATTR, of_process

    group = of_process(int(pid))
    try:
        return os.getxattr(os.path.dirname(group), ROOT_XATTR).decode() if group else ""
    except OSError:
        return ""


def _zombie(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return True  # gone


def cgroups() -> set[str]:
    """ladle's cgroups (`ladle/KEY` of a state root, `ladle/KEY/POT` of a pot), named by the root
    that the xattr of `ladle/KEY` records; those of another run's roots are not ours."""
    from ladle.hosts.linux.cgroup import ROOT_XATTR, mount

    base = os.path.join(mount(), "ladle")
    found = set()
    for key in _dirs(base):
        try:
            root = os.getxattr(os.path.join(base, key), ROOT_XATTR).decode()
        except OSError:
            root = f"(state root unknown: ladle/{key})"
        if not _others(root):
            found |= {f"{root}: cgroup ladle/{key}", *(f"{root}: cgroup ladle/{key}/{pot}"
                                                       for pot in _dirs(os.path.join(base, key)))}
    return found | _v1_cgroups()


def _v1_cgroups() -> set[str]:
    """The same in each v1 controller's hierarchy (a v1 or hybrid host's memory, pids, cpu and
    cpuset groups of pots with limits), named by the root in their state root group's xattr."""
    from ladle.hosts.linux.limits import ROOT_XATTR, v1

    found = set()
    for controller, where in v1().items():
        base = os.path.join(where, "ladle")
        for key in _dirs(base):
            try:
                root = os.getxattr(os.path.join(base, key), ROOT_XATTR).decode()
            except OSError:
                root = f"(state root unknown: {controller} ladle/{key})"
            if not _others(root):
                found |= {f"{root}: {controller} cgroup ladle/{key}",
                          *(f"{root}: {controller} cgroup ladle/{key}/{pot}" for pot in _dirs(os.path.join(base, key)))}
    return found


def _dirs(path: str) -> list[str]:
    try:
        return [e.name for e in os.scandir(path) if e.is_dir()]
    except OSError:
        return []


def interfaces() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}
    return {n for n in names if n.startswith(("ldbr", "ldv"))}


def nft_tables() -> set[str]:
    """nftables tables of ladle (`inet ladle`) in this network namespace."""
    try:
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {line.strip() for line in out.splitlines() if line.split()[-1:] == ["ladle"]}


def netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return set(out.split())


def datasets() -> set[str]:
    try:
        out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "all"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {d for d in out.split() if not _others(d)}


def snapshot(with_zfs: bool = False) -> dict[str, set[str]]:
    state = {"mounts": mounts(), "processes": foreign_processes(), "interfaces": interfaces(),
             "nft": nft_tables(), "netns": netns(), "cgroups": cgroups()}
    if with_zfs:
        state["datasets"] = datasets()
    return state


def leaked(before: dict[str, set[str]], after: dict[str, set[str]]) -> list[str]:
    return [f"{kind}: {item}" for kind in before for item in sorted(after[kind] - before[kind])]


def monitors(prefix: str) -> dict[int, str]:
    """Keepers, monitors and their waiting pid 1s, of state roots under `prefix` (pid -> command line)."""
    found = {}
    for pid in os.listdir("/proc"):
        cmd = cmdline(pid) if pid.isdigit() else None
        if cmd is None:
            continue
        if cmd.startswith(("ladle-mon", "ladle-pid1")) and len(cmd.split()) > 1 and cmd.split()[1].startswith(prefix):
            found[int(pid)] = cmd
    return found


def monitors_gone(prefix: str, timeout: float) -> dict[int, str]:
    """Wait (on pidfds) for the monitors under `prefix` to exit; those still there after `timeout`."""
    import select
    import time

    deadline = time.monotonic() + timeout
    left = monitors(prefix)
    for pid in list(left):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            left.pop(pid)
            continue
        try:
            if select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                left.pop(pid)
        finally:
            os.close(fd)
    return left

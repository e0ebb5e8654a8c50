"""What a test run may leak on the host: mounts, processes in other pid namespaces, network
namespaces, ladle-like interfaces, nftables tables and ZFS datasets. Compared before and after."""

from __future__ import annotations

import os
import subprocess


def mounts() -> set[str]:
    with open("/proc/self/mounts") as f:
        return {" ".join(line.split()[:3]) for line in f}


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
        if cmd is None or _zombie(pid):  # dead already, its reaper about to collect it
            continue
        if not cmd.startswith("ladle-pid1 "):
            found.add(f"{pid} {cmd}")
    return found


def _zombie(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return True  # gone


def interfaces() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}
    return {n for n in names if n.startswith(("ldbr", "ldv"))}


def netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return set(out.split())


def datasets() -> set[str]:
    try:
        out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "all"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(out.split())


def snapshot(with_zfs: bool = False) -> dict[str, set[str]]:
    state = {"mounts": mounts(), "processes": foreign_processes(), "interfaces": interfaces(),
             "netns": netns()}
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

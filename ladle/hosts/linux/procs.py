"""A pot's processes, as `ladle ps` lists them: from its cgroup, read on the host's /proc."""

from __future__ import annotations

import os
import stat
from typing import Any

MAX_READ = 1 << 20  # a passwd file longer than this is read in part


def _pids(group: str) -> list[int]:
    try:
        with open(os.path.join(group, "cgroup.procs")) as f:
            return sorted(int(p) for p in f.read().split())
    except OSError:
        return []


def read_in_pot(group: str, init_pid: int, path: str) -> bytes | None:
    """A regular file of the running pot, resolved inside its root as its pid 1 sees it
    (/proc/PID/root, PID checked to be in the pot's cgroup) by `mounts.open_in_root`: no link
    is followed out of the pot, and a FIFO or device there is never opened for reading."""
    from ladle.hosts.linux import mounts

    if init_pid not in _pids(group):
        return None
    try:
        root_fd = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = mounts.open_in_root(root_fd, path)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with open(f"/proc/self/fd/{fd}", "rb") as f:  # the O_PATH descriptor's own file, reopened
            return f.read(MAX_READ)
    except OSError:
        return None
    finally:
        os.close(fd)


def listing(group: str) -> list[dict[str, Any]]:
    """Every process in the pot's cgroup: its pid inside the pot (the last of /proc's NSpid) and
    on the host, its real uid and its command line (the name in brackets if it has none)."""
    out = []
    for pid in _pids(group):
        try:
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except (OSError, ValueError):
            continue  # gone meanwhile
        inside = status.get("NSpid", str(pid)).split()[-1]
        out.append({"pid": int(inside), "host_pid": pid, "uid": int(status.get("Uid", "0").split()[0]),
                    "command": " ".join(argv) or f"[{status.get('Name', '?').strip()}]"})
    return out

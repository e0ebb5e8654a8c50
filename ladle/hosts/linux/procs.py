"""A pot's processes, as `ladle ps` lists them: from its cgroup, read on the host's /proc."""

from __future__ import annotations

import os
from typing import Any


def listing(group: str) -> list[dict[str, Any]]:
    """Every process in the pot's cgroup: its pid inside the pot (the last of /proc's NSpid) and
    on the host, its real uid and its command line (the name in brackets if it has none)."""
    try:
        with open(os.path.join(group, "cgroup.procs")) as f:
            pids = sorted(int(p) for p in f.read().split())
    except OSError:
        return []
    out = []
    for pid in pids:
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

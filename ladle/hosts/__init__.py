"""Host drivers: the same engine runs pots as jails on FreeBSD and as namespaces on Linux."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ladle.errors import UsageError

if TYPE_CHECKING:
    from ladle.hosts.base import Host
    from ladle.plan.runner import Runner

HOSTS = ("linux", "freebsd")


def this_host() -> str:
    return "freebsd" if sys.platform.startswith("freebsd") else "linux"


def open_host(name: str, runner: Runner, root: str, arch: str = "", offline: bool = False) -> Host:
    """The driver for `name`, imported lazily; `offline` when this is not that host (a dry run)."""
    if name == "linux":
        from ladle.hosts.linux import LinuxHost
        return LinuxHost(runner, root, offline)
    if name == "freebsd":
        from ladle.hosts.freebsd import FreeBSDHost
        return FreeBSDHost(runner, root, arch, offline)
    raise UsageError(f"unknown host {name!r} (choose from {', '.join(HOSTS)})")

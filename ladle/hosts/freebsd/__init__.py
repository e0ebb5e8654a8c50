"""The FreeBSD host driver: pots are jails with explicit `jail -c` parameters, mounts are nullfs.

Everything that changes the host is a plan step that renders its exact commands (`--dry-run`
prints them on any host, tests compare them with golden files and check them against the
FreeBSD manual pages) and runs them through the runner. Public API:

- `FreeBSDHost` (the `Host` implementation),
- `attr_defaults`, `check_attr`, `expand_attr` (pot attributes, `jailparams`),
- `canonical_release`, `release_base_steps` (bases, `bases`),
- `start_plan`, `stop_plan`, `copy_plan`, `main_argv`, `exec_argv` (plans, `plans`).
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ladle.errors import UsageError
from ladle.hosts.base import Host, RunRecord, RuntimeSpec
from ladle.hosts.freebsd import jailparams, plans
from ladle.hosts.freebsd.bases import (
    DEFAULT_MIRROR,
    MACHINE_ARCH,
    canonical_release,
    release_base_steps,
    userland_version,
)
from ladle.hosts.freebsd.jailparams import attr_defaults, check_attr, expand_attr
from ladle.hosts.freebsd.plans import copy_plan, exec_argv, main_argv, start_plan, stop_plan

if TYPE_CHECKING:
    from ladle.plan.runner import Runner
    from ladle.plan.steps import Step
    from ladle.storage.snapshotter import Mount
    from ladle.supervise.client import MonitorClient

START_FSTYPES = ("nullfs", "tmpfs", "devfs", "procfs", "fdescfs", "linprocfs")
MONITOR = ("import sys; sys.path[:0] = [sys.argv.pop(1)]; "
           "from ladle.hosts.freebsd.monitor import main; main(sys.argv[1:])")

__all__ = ["FreeBSDHost", "attr_defaults", "canonical_release", "check_attr", "copy_plan", "exec_argv",
           "expand_attr", "main_argv", "release_base_steps", "start_plan", "stop_plan"]


class FreeBSDHost(Host):
    """Pots as FreeBSD jails. `arch` is the `arch` setting (hw.machine of the bases), '' for
    this host's."""

    name = "freebsd"

    def __init__(self, runner: Runner, root: str, arch: str = "", offline: bool = False) -> None:
        super().__init__(runner, root, offline)
        self.arch = arch

    @cached_property
    def machine(self) -> tuple[str, str]:
        """(hw.machine, hw.machine_arch), which name the release directories: from the `arch`
        setting, else `uname -m` and `uname -p` of this host; amd64 in a dry run from another
        host, which has no FreeBSD to ask."""
        if self.arch:
            return self.arch, MACHINE_ARCH.get(self.arch, self.arch)
        if self.offline:
            return "amd64", "amd64"
        return self.runner.run(["uname", "-m"]).strip(), self.runner.run(["uname", "-p"]).strip()

    # Attributes --------------------------------------------------------------------------------

    def attr_defaults(self) -> dict[str, str]:
        return jailparams.attr_defaults()

    def check_attr(self, name: str, value: str) -> str:
        return jailparams.check_attr(name, value)

    def canonical_release(self, release: str) -> str:
        return canonical_release(release)

    def expand_attr(self, name: str, value: str) -> dict[str, str]:
        """The attributes to store for name=value (`sysvipc` sets sysvshm, sysvsem and sysvmsg)."""
        return jailparams.expand_attr(name, value)

    # Pots --------------------------------------------------------------------------------------

    def check_layout(self, storage: str, type_: str, level: int) -> None:
        """A multi level 1 or 2 pot on dir storage is an overlay layer, which nullfs cannot
        stack: it needs ZFS clones."""
        if storage == "dir" and type_ == "multi" and level in (1, 2):
            raise UsageError("on FreeBSD a multi level 1 or 2 pot needs zfs storage: ladle init --storage zfs"
                             " --dataset POOL/PATH (or create it with -t single)")

    # Bases -------------------------------------------------------------------------------------

    def release_base_steps(self, release: str, dest: str, cache: str, mirror: str) -> list[Step]:
        return release_base_steps(release, dest, cache, mirror or DEFAULT_MIRROR, self.machine)

    # Life cycle ----------------------------------------------------------------------------------

    def monitor_argv(self) -> list[str]:
        from ladle.supervise.client import python_argv
        return [*python_argv(MONITOR), self.root]

    def start_plan(self, spec: RuntimeSpec) -> list[Step]:
        """pot's start; `osrelease` is the userland version of the pot's root tree (for a multi
        pot, its base)."""
        osrelease = userland_version(spec.root[0].source) if spec.root else None
        ext = self.external_interfaces() if spec.network in ("public-bridge", "private-bridge") else {}
        return plans.start_plan(spec, self.on_exit(spec.name, bool(spec.extra.get("remove"))), osrelease,
                                self.root, ext)

    def external_interfaces(self) -> dict[str, str]:
        """The interface of each address family's default route (`route -n get -inet default`),
        which pf's NAT and port exports use; a family without one gets neither. A dry run from
        another host cannot ask: it shows a placeholder."""
        from ladle.hosts.freebsd.net import UNKNOWN_EXT_IF, default_route_interface

        out = {}
        for af in ("inet", "inet6"):
            found = UNKNOWN_EXT_IF if self.offline else default_route_interface(
                self.runner.run(["route", "-n", "get", f"-{af}", "default"], check=False))
            if found:
                out[af] = found
        return out

    def stop_plan(self, spec: RuntimeSpec, run: RunRecord) -> list[Step]:
        return plans.stop_plan(spec, run, self.root)

    def hosts_plan(self, spec: RuntimeSpec, run: RunRecord) -> list[Step]:
        return plans.hosts_plan(spec)

    # Resources -----------------------------------------------------------------------------------

    def limits_plan(self, spec: RuntimeSpec, run: RunRecord, limits: dict[str, Any],
                    previous: dict[str, Any]) -> list[Step]:
        """The jail's rules replaced at once; a cpuset lifted is set to every CPU again."""
        from ladle.hosts.freebsd.rctl import JailLimits

        if previous.get("cpus") and not limits.get("cpus"):
            limits = {**limits, "cpus": self.host_cpus() or previous["cpus"]}
        return [JailLimits(spec.name, limits, True, previous)]

    def _sysctl(self, name: str) -> int | None:
        if self.offline:
            return None
        from ladle.errors import CommandFailed
        try:
            return int(self.runner.run(["sysctl", "-n", name]).strip())
        except (CommandFailed, ValueError):
            return None

    def host_cpus(self) -> list[int] | None:
        count = self._sysctl("hw.ncpu")
        return list(range(count)) if count else None

    def host_memory(self) -> int | None:
        return self._sysctl("hw.physmem")

    def pinned(self, exclude: str | None = None) -> list[list[int]]:
        """Every running jail's cpuset but pot `exclude`'s (jails of any state root count: they
        share the CPUs), from `jls name` and `cpuset -g -j NAME`."""
        host = self.host_cpus()
        if host is None:
            return []
        from ladle.hosts.freebsd import rctl
        from ladle.hosts.freebsd.steps import jails
        return rctl.pinned(self.runner, jails(self.runner) - {exclude or ""}, host)

    def usage(self, spec: RuntimeSpec, run: RunRecord) -> dict[str, float]:
        from ladle.hosts.freebsd import rctl
        return rctl.usage(self.runner, spec.name)

    def processes(self, spec: RuntimeSpec, run: RunRecord) -> list[dict[str, Any]]:
        from ladle.hosts.freebsd import rctl
        return rctl.processes(self.runner, spec.name)

    def exec(self, spec: RuntimeSpec, run: RunRecord, argv: list[str], monitor: MonitorClient, *,
             tty: bool, env: dict[str, str], bound: bool = False) -> int | None:
        """`jexec -l` through the monitor, on our descriptors or on a new terminal."""
        from ladle.supervise import attach

        request = {"pot": spec.name, "argv": exec_argv(spec, argv, env), "env": {}, "tty": tty, "bound": bound}
        return attach.exec_in(monitor, request, os.openpty() if tty else None)

    def exec_render(self, spec: RuntimeSpec, argv: list[str], *, tty: bool) -> list[str]:
        import shlex
        return [shlex.join(exec_argv(spec, argv, {}))]

    def alive(self, run: RunRecord) -> bool:
        """A pot runs while its jail exists (a persistent pot's jail outlives its command)."""
        from ladle.hosts.freebsd.steps import jail_exists
        return jail_exists(self.runner, run.pot)

    def alive_all(self, runs: list[RunRecord]) -> list[bool]:
        """One `jls` for all of them."""
        from ladle.hosts.freebsd.steps import jails
        names = jails(self.runner)
        return [r.pot in names for r in runs]

    def live_mount_plan(self, spec: RuntimeSpec, run: RunRecord, mount: Mount) -> list[Step] | None:
        """None: no host directory is mounted into a running jail. mount_nullfs(8) follows links
        in a path that the jail's processes can change between the check and the mount (there is
        no mount by descriptor), so the mount waits for the next start, when nothing runs there."""
        return None

    def live_unmount_plan(self, spec: RuntimeSpec, run: RunRecord, target: str) -> list[Step]:
        from ladle.hosts.freebsd.steps import JailUnmount
        return [JailUnmount(plans.jail_root(spec)[0], target)]

    def leaked_mounts(self, live: set[str]) -> list[str]:
        """What `mount -p` lists under the state root that a pot's start mounts (nullfs, tmpfs,
        devfs, procfs, fdescfs), for pots that do not run. ZFS pots are mounted at their dataset's
        mountpoint (`zfs/pots/NAME`), the others at `run/NAME/root`, so both are looked under;
        the datasets themselves (zfs) are not leaks."""
        from ladle.hosts.freebsd.steps import mount_table

        out = []
        for point, fstype in mount_table(self.runner):
            if fstype not in START_FSTYPES or not point.startswith(self.root.rstrip("/") + "/"):
                continue
            parts = point[len(self.root):].strip("/").split("/")
            owner = parts[1] if parts[0] == "run" else parts[2] if parts[:2] in (["zfs", "pots"],
                                                                                  ["storage", "pots"]) else None
            if owner is None or owner not in live:
                out.append(point)
        return out

    def force_unmount(self, point: str) -> list[Step]:
        """`umount -f` (FreeBSD has no lazy unmount)."""
        from ladle.plan.steps import Cmd

        return [Cmd(["umount", "-f", point])]

    # Files -------------------------------------------------------------------------------------

    def copy_plan(self, spec: RuntimeSpec, run: RunRecord | None, direction: str, host_path: str,
                  pot_path: str, create_parents: bool, keep_setuid: bool = False) -> list[Step]:
        return plans.copy_plan(spec, run, direction, host_path, pot_path, create_parents, keep_setuid)


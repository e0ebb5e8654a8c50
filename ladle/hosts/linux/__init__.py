"""The Linux host driver: pots as namespaces (mount, pid, uts, ipc, net), pivot_root into the pot's
tree, a minimal /dev, /sys read-only, a reduced capability set (`caps`) and no_new_privs.

Modules: `launch` (how the monitor starts a pot's pid 1 and processes), `monitor` (the monitor's
entry point here), `rootfs` (the pot's tree as exact operations), `mounts` (mounting inside a
root without following its symlinks), `container` (command line, environment, entering a running
pot), `caps`, `syscalls` (ctypes), `steps` (plan steps), `stop`, `copy`, `live` (mounts into a
running pot, host-side steps in its namespaces), `busybox` (the offline base), and networking:
`netsteps` (bridge and alias steps), `netlink` (pyroute2), `nft` (ladle's nftables table). Heavy
modules are imported when used: pyroute2 only by the monitor, for a bridge pot, or for an alias.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, ClassVar

from ladle import platform
from ladle.errors import StateError, UsageError
from ladle.hosts.base import Host, RunRecord, RuntimeSpec, yes_no

if TYPE_CHECKING:
    from ladle.plan.steps import Step
    from ladle.storage.snapshotter import Mount
    from ladle.supervise.client import MonitorClient

MONITOR = ("import sys; sys.path[:0] = [sys.argv.pop(1)]; "
           "from ladle.hosts.linux.monitor import main; main(sys.argv[1:])")

BOOLEAN_ATTRS = ("persistent", "procfs", "fdescfs", "mlock",
                 # pot's own attributes, the same on every host
                 "no-rc-script", "start-at-boot", "early-start-at-boot", "prunable", "to-be-pruned",
                 "localhost-tunnel", "no-tmpfs", "no-etc-hosts")
FREEBSD_ONLY = ("enforce_statfs", "children", "devfs_ruleset", "mount", "nullfs", "tmpfs", "zfs",
                "linprocfs", "raw_sockets", "socket_af", "chflags", "sysvshm", "sysvsem", "sysvmsg")
DEFAULTS = {"persistent": "YES", "procfs": "YES", "fdescfs": "YES", "mlock": "NO",
            "sysvipc": "new", "stop_timeout": "10", "exec_stop": "", "seccomp": "default"}
MAX_STOP_TIMEOUT = 86400  # a day: longer is a mistake, and time.monotonic() + it must stay finite


class LinuxHost(Host):
    """Runs pots in Linux namespaces, their processes owned by the host's monitor."""

    name: ClassVar[str] = "linux"

    # Attributes --------------------------------------------------------------------------------

    def attr_defaults(self) -> dict[str, str]:
        return dict(DEFAULTS)

    def check_attr(self, name: str, value: str) -> str:
        if name in FREEBSD_ONLY:
            raise UsageError(f"attribute {name} is a FreeBSD jail parameter and is not supported on linux")
        if name in BOOLEAN_ATTRS:
            return yes_no(name, value)
        if name == "stop_timeout":
            v = value.strip()
            if not v.isascii() or not v.isdigit() or int(v) > MAX_STOP_TIMEOUT:
                raise UsageError(f"attribute stop_timeout takes a number of seconds from 0 to {MAX_STOP_TIMEOUT},"
                                 f" not {value!r}")
            return str(int(v))
        if name == "seccomp":
            low = value.strip().lower()
            if low not in ("default", "unconfined"):
                raise UsageError(f"attribute seccomp takes default or unconfined, not {value!r}")
            return low
        if name == "sysvipc":
            low = value.strip().lower()
            if low == "disable":
                raise UsageError("sysvipc=disable is not supported on linux (use new or inherit)")
            if low not in ("new", "inherit"):
                raise UsageError(f"attribute sysvipc takes new or inherit, not {value!r}")
            return low
        if name == "exec_stop":
            return value
        raise UsageError(f"unknown attribute {name!r}")

    # Bases -------------------------------------------------------------------------------------

    def release_base_steps(self, release: str, dest: str, cache: str, mirror: str) -> list[Step]:
        if release != "busybox":
            raise UsageError("on linux, -r takes 'busybox'; use --from-tar FILE to import another"
                             " root file system")
        from ladle.hosts.linux import busybox
        from ladle.hosts.linux.steps import BusyboxBase
        from ladle.plan.steps import WriteFile

        path = busybox.find()
        busybox.check(path)
        etc = os.path.join(dest, "etc")
        return [BusyboxBase(dest, path),
                WriteFile(os.path.join(etc, "passwd"), busybox.PASSWD),
                WriteFile(os.path.join(etc, "group"), busybox.GROUP),
                WriteFile(os.path.join(etc, "hosts"), busybox.HOSTS),
                WriteFile(os.path.join(etc, "os-release"), busybox.os_release(busybox.version(path)))]

    # Life cycle ----------------------------------------------------------------------------------

    def monitor_argv(self) -> list[str]:
        from ladle.supervise.client import python_argv
        return [*python_argv(MONITOR), self.root]

    def start_plan(self, spec: RuntimeSpec) -> list[Step]:
        from ladle.hosts.linux import cgroup, container
        from ladle.hosts.linux.steps import LinuxCgroup, LinuxEnter, LinuxMain, LinuxSandbox, spec_to_json

        container.check_spec(spec)
        container.spec_argv(spec)
        data = spec_to_json(spec)
        group = cgroup.pot_dir(self.root, spec.name)
        # Host-side steps (veths, limits) go between the sandbox and `enter`: they address the
        # pot by its waiting pid 1, which is in the pot's cgroup already.
        return [LinuxCgroup(spec.name, group, os.path.realpath(self.root)), *self._limits(spec, group),
                *_net_files(spec),
                LinuxSandbox(spec.name, container.namespaces(spec), group),
                *_net_up(spec),
                LinuxEnter(spec.name, data),
                LinuxMain(spec.name, data, self.on_exit(spec.name, bool(spec.extra.get("remove"))), group)]

    def _limits(self, spec: RuntimeSpec, group: str) -> list[Step]:
        """The pot's limits on its cgroups, before its pid 1 joins them (`limits`)."""
        from ladle.hosts.linux.steps import LinuxLimits

        return [LinuxLimits(spec.name, group, dict(spec.extra.get("limits") or {}))]

    def limits_plan(self, spec: RuntimeSpec, run: RunRecord, limits: dict[str, Any],
                    previous: dict[str, Any]) -> list[Step]:
        from ladle.hosts.linux import cgroup
        from ladle.hosts.linux.steps import LinuxLimits

        return [LinuxLimits(spec.name, cgroup.pot_dir(self.root, spec.name), limits, previous)]

    def host_cpus(self) -> list[int] | None:
        from ladle.hosts.linux import limits

        return limits.host_cpus()

    def host_memory(self) -> int | None:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")

    def pinned(self, exclude: str | None = None) -> list[list[int]]:
        """The CPUs of every pinned pot on this host (all state roots'), but pot `exclude` of this
        root, for balancing `-C N`."""
        from ladle.hosts.linux import cgroup, limits

        base = os.path.join(cgroup.mount(), "ladle")
        own = cgroup.pot_dir(self.root, exclude) if exclude else None
        found = []
        for key in _subdirs(base):
            for pot in _subdirs(os.path.join(base, key)):
                cpus = None if os.path.join(base, key, pot) == own else limits.pinned(os.path.join(base, key, pot))
                if cpus:
                    found.append(cpus)
        return found

    def oom_kills(self, pot: str) -> int | None:
        from ladle.hosts.linux import cgroup, limits

        group = cgroup.pot_dir(self.root, pot)
        return limits.oom_kills(group) if os.path.isdir(group) else None

    def usage(self, spec: RuntimeSpec, run: RunRecord) -> dict[str, float]:
        from ladle.hosts.linux import cgroup, limits

        return {**limits.usage(cgroup.pot_dir(self.root, spec.name)), "mhz": limits.clock_mhz()}

    def processes(self, spec: RuntimeSpec, run: RunRecord) -> list[dict[str, Any]]:
        from ladle.hosts.linux import cgroup, procs

        return procs.listing(cgroup.pot_dir(self.root, spec.name))

    def passwd(self, spec: RuntimeSpec, run: RunRecord) -> bytes | None:
        from ladle.hosts.linux import cgroup, procs

        if run.init_pid is None:
            return None
        return procs.read_in_pot(cgroup.pot_dir(self.root, spec.name), run.init_pid, "etc/passwd")

    def stop_plan(self, spec: RuntimeSpec, run: RunRecord) -> list[Step]:
        from ladle.hosts.linux import cgroup
        from ladle.hosts.linux.steps import LinuxCgroupRemove, LinuxStop, spec_to_json

        net = [s for up in _net_up(spec) for s in up.inverse()]
        return [LinuxStop(spec_to_json(spec), asdict(run)), *net,
                LinuxCgroupRemove(spec.name, cgroup.pot_dir(self.root, spec.name))]

    def hosts_plan(self, spec: RuntimeSpec, run: RunRecord) -> list[Step]:
        from ladle.hosts.linux.netsteps import LinuxHostsWrite

        text = spec.net.get("hosts")
        if text is None or not self.alive(run):
            return []
        return [LinuxHostsWrite(spec.name, os.path.join(spec.run_dir, "hosts"), text)]

    def leftovers(self) -> dict[str, bool]:
        """Pots with a cgroup under this state root, and whether processes are in it; and pots
        whose network a crash left (a record in their run directory)."""
        from ladle.hosts.linux import cgroup

        found = cgroup.pots(self.root)
        run = os.path.join(self.root, "run")
        with contextlib.suppress(OSError):
            for name in os.listdir(run):
                if name not in found and os.path.exists(os.path.join(run, name, "net.json")):
                    found[name] = False
        return found

    def leftover_plan(self, name: str) -> list[Step]:
        from ladle.hosts.linux import cgroup
        from ladle.hosts.linux.steps import LinuxCgroupRemove

        path = cgroup.pot_dir(self.root, name)
        run_dir = os.path.join(self.root, "run", name)
        net: list[Step] = []
        if os.path.exists(os.path.join(run_dir, "net.json")):
            from ladle.hosts.linux.netsteps import cleanup_steps

            net = cleanup_steps(name, run_dir)
        return [*net, *([LinuxCgroupRemove(name, path)] if cgroup.exists(path) else [])]

    def alive(self, run: RunRecord) -> bool:
        return platform.alive(run.init_pid, run.init_start)

    # exec ----------------------------------------------------------------------------------------

    def exec(self, spec: RuntimeSpec, run: RunRecord, argv: list[str], monitor: MonitorClient, *,
             tty: bool, env: dict[str, str], bound: bool = False) -> int | None:
        from ladle.hosts.linux import container
        from ladle.hosts.linux.steps import seccomp_on
        from ladle.supervise import attach

        entry = container.open_entry(run.init_pid, run.init_start)
        if entry is None:
            raise StateError(f"pot {spec.name} is not running")
        try:
            terminal = _open_pty(entry) if tty else None  # from the pot's own devpts
        finally:
            entry.close()
        request = {"pot": spec.name, "argv": argv, "env": container.pot_env(spec, env),
                   "mlock": spec.attr_on("mlock"), "seccomp": seccomp_on(spec), "tty": tty, "bound": bound}
        return attach.exec_in(monitor, request, terminal)

    def exec_render(self, spec: RuntimeSpec, argv: list[str], *, tty: bool) -> list[str]:
        import shlex

        from ladle.hosts.linux import cgroup, container
        from ladle.hosts.linux.steps import SECCOMP_NOTE, caps_flags, join_cgroup, seccomp_on

        pid = str(spec.extra.get("init_pid") or "$PID1")
        env = [f"{k}={v}" for k, v in container.pot_env(spec).items()]
        line = shlex.join(["nsenter", "--target", pid, "--mount", "--uts", "--ipc", "--net", "--pid", "--root",
                           "--wd=/", "--", "setpriv", *caps_flags(spec.attr_on("mlock")), "--", "env", "-i",
                           *env, *argv]).replace("'$PID1'", '"$PID1"')
        note = [SECCOMP_NOTE] if seccomp_on(spec) else []
        join = join_cgroup(cgroup.pot_dir(self.root, spec.name))
        return [*join, *note, line + ("  # on a new terminal of the pot's own devpts" if tty else "")]

    def live_mount_plan(self, spec: RuntimeSpec, run: RunRecord, mount: Mount) -> list[Step]:
        from ladle.hosts.linux.live import LinuxLiveMount

        assert run.init_pid is not None
        return [LinuxLiveMount(spec.name, run.init_pid, run.init_start, mount.source, mount.target,
                               mount.readonly)]

    def live_unmount_plan(self, spec: RuntimeSpec, run: RunRecord, target: str) -> list[Step]:
        from ladle.hosts.linux.live import LinuxLiveUnmount

        assert run.init_pid is not None
        return [LinuxLiveUnmount(spec.name, run.init_pid, run.init_start, target)]

    def leaked_mounts(self, live: set[str]) -> list[str]:
        """A pot's mounts live in its own mount namespace, so a mount under `run/` seen on the
        host was left by a crash in the middle of a host-side mount (a copy into a stopped pot)."""
        prefix = os.path.join(self.root, "run") + "/"
        with open("/proc/self/mounts") as f:
            points = [line.split()[1].replace("\\040", " ") for line in f]
        return [p for p in points if p.startswith(prefix)]

    def force_unmount(self, point: str) -> list[Step]:
        from ladle.plan.steps import Cmd

        return [Cmd(["umount", "-l", point])]

    # Files -------------------------------------------------------------------------------------

    def copy_plan(self, spec: RuntimeSpec, run: RunRecord | None, direction: str, host_path: str,
                  pot_path: str, create_parents: bool, keep_setuid: bool = False) -> list[Step]:
        from ladle.hosts.linux.steps import LinuxCopy, spec_to_json

        if direction not in ("in", "out"):
            raise UsageError(f"copy direction must be 'in' or 'out', not {direction!r}")
        live = run is not None and self.alive(run)
        return [LinuxCopy(spec_to_json(spec), run.init_pid if live and run else None,
                          run.init_start if live and run else None, direction, host_path, pot_path,
                          create_parents, keep_setuid)]


def _subdirs(path: str) -> list[str]:
    try:
        return [n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n))]
    except OSError:
        return []


def _net_files(spec: RuntimeSpec) -> list[Step]:
    """The host-side /etc/hosts and resolv.conf of a pot, written before its pid 1 builds its tree."""
    if spec.net.get("hosts") is None and spec.net.get("resolv") is None:
        return []
    from ladle.hosts.linux.netsteps import LinuxNetFiles

    return [LinuxNetFiles(spec.run_dir, spec.net.get("hosts"), spec.net.get("resolv"))]


def _net_up(spec: RuntimeSpec) -> list[Step]:
    """The host-side network steps of a pot's start (bridge and veth, or aliases); none for
    `inherit` and `none`, which never import the network modules."""
    net: dict[str, Any] = dict(spec.net)
    if spec.network == "alias" and net.get("aliases"):
        from ladle.hosts.linux.netsteps import LinuxAliases

        return [LinuxAliases(spec.name, list(net["aliases"]), spec.run_dir)]
    if spec.network in ("public-bridge", "private-bridge") and net.get("bridge"):
        from ladle.hosts.linux.netsteps import LinuxBridgeNet

        return [LinuxBridgeNet(spec.name, spec.run_dir, net)]
    return []


def _open_pty(entry: object) -> tuple[int, int]:
    """A pseudo-terminal from the pot's own devpts (so `tty` inside names it), found without
    following any symlink the pot may have planted; the host's devpts if that fails."""
    import fcntl
    import stat
    import struct

    from ladle.hosts.linux import container, mounts
    from ladle.hosts.linux import syscalls as sc

    assert isinstance(entry, container.Entry)
    try:
        path_fd = mounts.open_in_root(entry.root, "dev/pts/ptmx")
        try:
            st = os.fstat(path_fd)
            if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != 5:
                raise OSError("not a pty multiplexer")
            master = os.open(mounts.fd_path(path_fd), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        finally:
            os.close(path_fd)
        try:
            fcntl.ioctl(master, sc.TIOCSPTLCK, struct.pack("i", 0))
            slave = fcntl.ioctl(master, sc.TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            os.close(master)
            raise
        return master, slave
    except OSError:
        return os.openpty()

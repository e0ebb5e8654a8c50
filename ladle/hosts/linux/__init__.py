"""The Linux host driver: pots as namespaces (mount, pid, uts, ipc, net), pivot_root into the pot's
tree, a minimal /dev, /sys read-only, a reduced capability set (`caps`) and no_new_privs.

Modules: `container` (processes inside the namespaces), `mounts` (the pot's file system), `caps`,
`syscalls` (ctypes), `steps` (plan steps), `stop`, `copy`, `busybox` (the offline base). The
supervisor, mini-init and logs live in `ladle.supervise`. Heavy modules are imported when used.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import asdict
from typing import TYPE_CHECKING, ClassVar

from ladle import proc
from ladle.errors import HostError, StateError, UsageError
from ladle.hosts.base import Host, RunRecord, RuntimeSpec, yes_no

if TYPE_CHECKING:
    from ladle.plan.steps import Step
    from ladle.storage.snapshotter import Mount

BOOLEAN_ATTRS = ("persistent", "procfs", "fdescfs", "mlock",
                 # pot's own attributes, the same on every host
                 "no-rc-script", "start-at-boot", "early-start-at-boot", "prunable", "to-be-pruned",
                 "localhost-tunnel", "no-tmpfs", "no-etc-hosts")
FREEBSD_ONLY = ("enforce_statfs", "children", "devfs_ruleset", "mount", "nullfs", "tmpfs", "zfs",
                "linprocfs", "raw_sockets", "sysvshm", "sysvsem", "sysvmsg")
DEFAULTS = {"persistent": "YES", "procfs": "YES", "fdescfs": "YES", "mlock": "NO",
            "sysvipc": "new", "stop_timeout": "10", "exec_stop": ""}


class LinuxHost(Host):
    """Runs pots in Linux namespaces under a per-pot supervisor."""

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
            if not value.strip().isdigit():
                raise UsageError(f"attribute stop_timeout takes a number of seconds, not {value!r}")
            return str(int(value))
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

    def start_plan(self, spec: RuntimeSpec) -> list[Step]:
        from ladle.hosts.linux.container import check_spec
        from ladle.hosts.linux.steps import LinuxStart, spec_to_json

        check_spec(spec)
        return [LinuxStart(spec_to_json(spec))]

    def stop_plan(self, spec: RuntimeSpec, run: RunRecord) -> list[Step]:
        from ladle.hosts.linux.steps import LinuxStop, spec_to_json

        return [LinuxStop(spec_to_json(spec), asdict(run))]

    def alive(self, run: RunRecord) -> bool:
        return proc.alive(run.init_pid, run.init_start)

    def store_path(self, spec: RuntimeSpec) -> str | None:
        """Where supervisors record runs: spec.extra['store_path'], else <root>/ladle.db if any."""
        path = spec.extra.get("store_path") or os.path.join(self.root, "ladle.db")
        return str(path) if os.path.exists(path) else None

    def run_foreground(self, spec: RuntimeSpec, *, log: bool) -> int:
        from ladle.hosts.linux import container
        from ladle.supervise import supervisor

        container.check_spec(spec)

        def launch(stdio: object, take_tty: bool) -> container.Launched:
            return container.launch(spec, stdio, take_tty=take_tty)  # type: ignore[arg-type]

        try:
            return supervisor.foreground(spec.name, spec.log_path, self.store_path(spec), launch, log)
        except container.SetupError as e:
            raise HostError(str(e)) from None

    # exec ----------------------------------------------------------------------------------------

    def exec(self, spec: RuntimeSpec, run: RunRecord, argv: list[str], *, tty: bool,
             env: dict[str, str]) -> int:
        from ladle.hosts.linux import container
        from ladle.supervise import init

        if not argv:
            raise UsageError("exec needs a command")
        entry = container.open_entry(run.init_pid, run.init_start)
        if entry is None:
            raise StateError(f"pot {spec.name} is not running")
        penv = container.pot_env(spec, env)
        mlock = spec.attr_on("mlock")
        try:
            if tty:
                from ladle.supervise import tty as ttys

                master, slave = _open_pty(entry)
                try:
                    pid = container.spawn_in(entry, argv, penv, mlock=mlock, tty=slave)
                finally:
                    os.close(slave)
                try:
                    status = ttys.relay(master, pid)
                finally:
                    os.close(master)
            else:
                status = _run_attached(entry, argv, penv, mlock)
        except container.SetupError as e:
            raise HostError(f"pot {spec.name}: {e}") from None
        finally:
            entry.close()
        return init.exit_code(status)

    def exec_render(self, spec: RuntimeSpec, argv: list[str], *, tty: bool) -> list[str]:
        import shlex

        from ladle.hosts.linux import container

        pid = str(spec.extra.get("init_pid") or "<pid 1 of the pot>")
        ns = ["--mount", "--uts", "--ipc", "--net", "--pid"]
        env = [f"{k}={v}" for k, v in container.pot_env(spec).items()]
        line = shlex.join(["nsenter", "--target", pid, *ns, "--root", "--wd", "--", "env", "-i",
                           *env, *argv])
        return [line + ("  # with a new pseudo-terminal" if tty else "")]

    def live_mount_plan(self, spec: RuntimeSpec, run: RunRecord, mount: Mount) -> list[Step]:
        from ladle.hosts.linux.live import LinuxLiveMount

        assert run.init_pid is not None
        return [LinuxLiveMount(spec.name, run.init_pid, run.init_start, mount.source, mount.target,
                               mount.readonly)]

    def live_unmount_plan(self, spec: RuntimeSpec, run: RunRecord, target: str) -> list[Step]:
        from ladle.hosts.linux.live import LinuxLiveUnmount

        assert run.init_pid is not None
        return [LinuxLiveUnmount(spec.name, run.init_pid, run.init_start, target)]

    # Files -------------------------------------------------------------------------------------

    def copy_plan(self, spec: RuntimeSpec, run: RunRecord | None, direction: str, host_path: str,
                  pot_path: str, create_parents: bool) -> list[Step]:
        from ladle.hosts.linux.steps import LinuxCopy, spec_to_json

        if direction not in ("in", "out"):
            raise UsageError(f"copy direction must be 'in' or 'out', not {direction!r}")
        live = run is not None and self.alive(run)
        return [LinuxCopy(spec_to_json(spec), run.init_pid if live and run else None,
                          run.init_start if live and run else None, direction, host_path, pot_path,
                          create_parents)]


def _run_attached(entry: object, argv: list[str], env: dict[str, str], mlock: bool) -> int:
    """Run in the pot with our stdio; the terminal's Ctrl-C reaches the command (same process
    group) and not us; SIGTERM/SIGHUP sent to us are passed on."""
    from ladle.hosts.linux import container

    assert isinstance(entry, container.Entry)
    child = 0

    def forward(sig: int, frame: object) -> None:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, sig)

    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT)}
    old.update({s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)})
    try:
        child = container.spawn_in(entry, argv, env, mlock=mlock)
        return os.waitpid(child, 0)[1]
    finally:
        for s, h in old.items():
            signal.signal(s, h)


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

"""How the monitor starts a pot's processes on Linux (the monitor's `Launcher`).

A pot's start is split at a sync point, so that host-side steps can run between its parts:

1. `sandbox`: the monitor unshares a pid namespace for its next child and forks it: that child is
   the pot's pid 1. It unshares the mount, uts, ipc and (unless the pot shares the host's network)
   net namespaces, makes its mounts private, reports `K`, and waits on its control pipe. The
   start plan's host-side steps run now, addressing the pot by this pid.
2. `enter`: the monitor writes the pot's spec on the control pipe. pid 1 builds the pot's tree
   (`rootfs`), sets the hostname, pivots into the tree, points its stdio at the pot's own /dev/null,
   drops its capabilities, closes every descriptor and execs catatonit in pause mode. catatonit is
   loaded once into a sealed memfd, so /proc/1/exe inside a pot is no host file, and pid 1 has an
   empty environment.
3. `spawn`: the main process (and any `exec`) is forked by the monitor directly into the pot's
   pid namespace (the monitor enters it for its next child only), joins the other namespaces and
   the root of pid 1, drops capabilities and execs, with the environment it was given.

The monitor is not dumpable (PR_SET_DUMPABLE 0) and its children inherit that until they exec:
while a forked child still holds the monitor's descriptors or sits outside the pot's root, no
process of the pot can open /proc/PID/fd, /proc/PID/root or /proc/PID/cwd of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import shutil
import signal
import sys
import termios
from collections.abc import Callable
from typing import Any, NoReturn

from ladle import platform
from ladle.errors import HostError, StateError
from ladle.hosts.linux import caps, cgroup, container, mounts, rootfs, seccomp
from ladle.hosts.linux import syscalls as sc
from ladle.hosts.linux.steps import seccomp_on, spec_from_json
from ladle.supervise.launcher import Launcher, Sandbox
from ladle.supervise.spawn import Child, SpawnError, close_all_but, default_signals, fork_child, reason, report

INIT_CANDIDATES = ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit", "/usr/libexec/catatonit/catatonit")
INIT_ARGV = ["catatonit", "-P"]
_NS = {"mnt": sc.CLONE_NEWNS, "uts": sc.CLONE_NEWUTS, "ipc": sc.CLONE_NEWIPC, "net": sc.CLONE_NEWNET}


def find_init() -> str:
    """The static catatonit that becomes every pot's pid 1 (LADLE_INIT overrides)."""
    for path in (os.environ.get("LADLE_INIT"), *INIT_CANDIDATES, shutil.which("catatonit")):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise HostError("catatonit not found: it is every pot's pid 1 (on Debian: apt-get install catatonit)")


def sealed_copy(path: str) -> int:
    """A memfd holding `path`, sealed against any change, to exec from."""
    fd = os.memfd_create("catatonit", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    with open(path, "rb") as f:
        platform.write_all(fd, f.read())
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
                | fcntl.F_SEAL_SEAL)
    return fd


def _in_pid_namespace(ns_fd: int, fork: Callable[[], int]) -> int:
    """Fork with the child born in the pid namespace `ns_fd`; ours is put back at once."""
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(ns_fd, sc.CLONE_NEWPID)
        try:
            return fork()
        finally:
            sc.setns(own, sc.CLONE_NEWPID)
    finally:
        os.close(own)


class LinuxLauncher(Launcher):
    name = "linux"

    def __init__(self) -> None:
        self.init_fd = -1
        self._filter = b""

    def _seccomp(self) -> bytes:
        """The default seccomp filter, built once per monitor (libseccomp takes ~1 ms)."""
        if not self._filter:
            self._filter = seccomp.build()
        return self._filter

    def prepare_monitor(self) -> None:
        sc.prctl(sc.PR_SET_DUMPABLE, 0)

    def _init(self) -> int:
        if self.init_fd < 0:
            self.init_fd = sealed_copy(find_init())
        return self.init_fd

    # 1. A pid 1 that waits ---------------------------------------------------------------------

    def sandbox(self, pot: str, request: dict[str, Any]) -> tuple[Sandbox, Child]:
        flags = 0
        for name in request.get("namespaces", ["mnt", "uts", "ipc", "net"]):
            flags |= _NS[name]
        init = self._init()
        program = self._seccomp()
        title = str(request.get("title", f"ladle-pid1 {pot}"))
        ctl_r, ctl_w = os.pipe2(os.O_CLOEXEC)
        rep_r, rep_w = os.pipe2(os.O_CLOEXEC)
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        pid = -1
        try:
            sc.unshare(sc.CLONE_NEWPID)
            try:
                pid = os.fork()
                if pid == 0:
                    _pid1(flags, ctl_r, rep_w, init, title, program)
            finally:
                if pid != 0:
                    sc.setns(own, sc.CLONE_NEWPID)
        except OSError as e:
            for fd in (ctl_w, rep_r):
                os.close(fd)
            raise HostError(f"pot {pot}: cannot create its namespaces: {reason(e)}") from None
        finally:
            if pid != 0:
                for fd in (own, ctl_r, rep_w):
                    os.close(fd)
        return Sandbox(pid, platform.start_time(pid), ctl_w), Child(pid, rep_r)

    def place(self, sandbox: Sandbox, request: dict[str, Any]) -> None:
        if request.get("cgroup"):
            cgroup.join(str(request["cgroup"]), sandbox.pid)

    def net(self, sandbox: Sandbox | None, request: dict[str, Any]) -> dict[str, Any]:
        """The monitor runs without site-packages (`python -S`): the client names where pyroute2 is."""
        from ladle.hosts.linux import netsteps

        where = request.get("site")
        if isinstance(where, str) and where and where not in sys.path:
            sys.path.append(where)  # after the standard library and ladle: nothing of theirs is shadowed
        net = dict(request["net"])
        try:
            if request.get("action") == "down":
                netsteps.down(net)
            else:
                self._net_up(sandbox, request, net)
        except ImportError as e:
            raise HostError(f"bridge networking needs pyroute2 (pip install pyroute2): {e}") from None
        return {}

    def _net_up(self, sandbox: Sandbox | None, request: dict[str, Any], net: dict[str, Any]) -> None:
        from ladle.hosts.linux import netsteps

        if sandbox is None:
            raise StateError(f"pot {request.get('pot')} has no waiting pid 1")
        entry = container.open_entry(sandbox.pid, sandbox.start, names=("net",))
        if entry is None:
            raise StateError(f"pot {request.get('pot')}: its pid 1 is gone")
        os.close(entry.root)
        fd = entry.ns.get("net")
        if fd is None:
            raise StateError(f"pot {request.get('pot')} has no network namespace of its own")
        try:
            netsteps.up(net, fd)
        finally:
            os.close(fd)

    # 2. Into its root --------------------------------------------------------------------------

    def enter(self, sandbox: Sandbox, request: dict[str, Any]) -> None:
        data = json.dumps({"spec": request["spec"]}).encode()
        try:
            platform.write_all(sandbox.control, data)
        finally:
            os.close(sandbox.control)
            sandbox.control = -1

    # 3. The pot's processes --------------------------------------------------------------------

    def spawn(self, pot: str, sandbox: Sandbox | None, request: dict[str, Any], stdio: list[int],
              tty: bool) -> Child:
        """Everything the child runs is imported already: once it has joined the pot's root, the
        host's Python library is out of its reach."""
        if sandbox is None:
            raise StateError(f"pot {pot} is not running")
        entry = container.open_entry(sandbox.pid, sandbox.start)
        if entry is None:
            raise StateError(f"pot {pot} is not running")
        argv, env = list(request["argv"]), dict(request["env"])
        probe, mlock, cwd = request.get("probe"), bool(request.get("mlock")), str(request.get("cwd") or "/")
        user = str(request.get("user") or "")
        program = self._seccomp() if request.get("seccomp", True) else b""
        group = cgroup.of_process(sandbox.pid)  # pid 1's: where the pot's processes live
        procs: list[int] = []  # its cgroup2 group's cgroup.procs, and its v1 groups' (limits)
        try:
            for path in cgroup.procs_files(group) if group else []:
                procs.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
        except OSError:
            for fd in procs:
                os.close(fd)
            entry.close()
            raise

        def prepare() -> None:
            for fd in procs:  # born in the pot's cgroups, before anything of the pot is reachable
                os.write(fd, b"0")
                os.close(fd)
            container.join(entry, cwd)
            if tty:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            if probe and container.find_program(probe, env) is None:
                raise SpawnError(f"cannot run {probe!r}: No such file or directory")
            caps.drop(mlock)
            if user:
                container.become(user)  # after the capability drop, which needs root's
            if program:
                seccomp.apply(program)

        try:
            keep = [*entry.ns.values(), entry.root, *procs]
            if "pid" in entry.ns:
                return fork_child(argv, env, stdio, prepare, keep,
                                  around_fork=lambda fork: _in_pid_namespace(entry.ns["pid"], fork))
            return fork_child(argv, env, stdio, prepare, keep)
        finally:
            entry.close()
            for fd in procs:
                os.close(fd)

    def kill_sandbox(self, sandbox: Sandbox) -> None:
        if platform.alive(sandbox.pid, sandbox.start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(sandbox.pid, signal.SIGKILL)


def _stdio_to(path: str) -> None:
    fd = os.open(path, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(fd, std)
    os.close(fd)


def _pid1(flags: int, ctl: int, rep: int, init: int, title: str, program: bytes) -> NoReturn:
    """The pot's pid 1, between fork and exec (named `title` in ps while it waits)."""
    gc.disable()
    try:
        close_all_but([ctl, rep, init])
        platform.current.set_title(title)
        _stdio_to("/dev/null")
        sc.unshare(flags & ~sc.CLONE_NEWNS)
        os.write(rep, b"K\n")
        data = b""
        while chunk := os.read(ctl, 65536):
            data += chunk
        if not data:  # the monitor gave up on this pot
            os._exit(0)
        spec = spec_from_json(json.loads(data)["spec"])
        # The mount namespace only now: a spare waiting with a private copy of the host's mounts
        # kept every file system mounted then busy (a ZFS pot's dataset could not be destroyed
        # after its stop, zfs-fuse said "dataset is busy") and missed those mounted since.
        if flags & sc.CLONE_NEWNS:
            sc.unshare(sc.CLONE_NEWNS)
            mounts.make_private()
        root = os.path.join(spec.run_dir, "root")
        rootfs.build(spec, root)
        sc.sethostname(spec.hostname)
        if flags & sc.CLONE_NEWNET:
            sc.interface_up("lo")  # a fresh network namespace has its loopback down
        mounts.pivot(root)
        _stdio_to("/dev/null")  # the pot's own node: the host's /dev/null must not stay open in pid 1
        caps.drop(spec.attr_on("mlock"))
        if seccomp_on(spec):
            seccomp.apply(program)
        default_signals()
        close_all_but([rep, init])
        os.execve(init, INIT_ARGV, {})
    except BaseException as e:
        report(rep, reason(e))
    os._exit(127)

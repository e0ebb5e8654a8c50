"""A pot's file system on Linux as a list of operations, each able to print itself as the exact
command that does the same (`mount`, `mknod`, `ln`, `cp`) and to do it with system calls.

`plan(spec)` is the one list both `--dry-run` and the pot's pid 1 use, so what is printed is what
is done. Targets inside the pot are resolved from a descriptor of its root without following a
symlink out of it (`mounts.open_in_root`); the printed paths are the same unless the pot holds
such a link.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import stat
from dataclasses import dataclass

from ladle.hosts.base import RuntimeSpec
from ladle.hosts.linux import mounts
from ladle.hosts.linux import syscalls as sc
from ladle.platform import write_all
from ladle.storage.snapshotter import Mount

_FLAG_NAMES = ((sc.MS_RDONLY, "ro"), (sc.MS_NOSUID, "nosuid"), (sc.MS_NODEV, "nodev"),
               (sc.MS_NOEXEC, "noexec"), (sc.MS_STRICTATIME, "strictatime"))
_SYSTEM = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


def _options(flags: int, data: str | None = None) -> str:
    words = [name for bit, name in _FLAG_NAMES if flags & bit]
    return ",".join([*words, *([data] if data else [])])


def _at(root: str, path: str) -> str:
    return root.rstrip("/") + "/" + path.strip("/") if path.strip("/") else root


class Op:
    """One operation on the pot's tree (`root` is its host path before pivot_root)."""

    def render(self, root: str) -> list[str]:
        raise NotImplementedError

    def what(self) -> str:
        """What it does, for an error message ("cannot ...")."""
        raise NotImplementedError

    def apply(self, root_fd: int) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class BindMount(Op):
    """A host tree at `target` (fscomps, mount-ins): `mount --rbind`, then read-only if asked."""

    source: str
    target: str
    readonly: bool = False

    def what(self) -> str:
        return f"mount {self.source} on /{self.target.strip('/')}"

    def render(self, root: str) -> list[str]:
        lines = [shlex.join(["mount", "--rbind", self.source, _at(root, self.target)])]
        if self.readonly:
            lines.append(shlex.join(["mount", "-o", "remount,bind,ro", _at(root, self.target)]))
        return lines

    def apply(self, root_fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.stat(self.source).st_mode) else "file"
        fd = mounts.mount_point(root_fd, self.target, create=kind)
        try:
            sc.mount(self.source, mounts.fd_path(fd), None, sc.MS_BIND | sc.MS_REC)
        finally:
            os.close(fd)
        if self.readonly:
            _remount(root_fd, self.target, sc.MS_RDONLY)


@dataclass(frozen=True)
class FsMount(Op):
    """`mount -t TYPE -o OPTIONS SOURCE TARGET` (proc, tmpfs, devpts, sysfs, other layers)."""

    fstype: str
    source: str
    target: str
    flags: int = 0
    data: str = ""

    def what(self) -> str:
        return f"mount {self.fstype} on /{self.target.strip('/')}"

    def render(self, root: str) -> list[str]:
        opts = _options(self.flags, self.data)
        return [shlex.join(["mount", "-t", self.fstype, *(["-o", opts] if opts else []), self.source,
                            _at(root, self.target)])]

    def apply(self, root_fd: int) -> None:
        fd = mounts.mount_point(root_fd, self.target)
        try:
            sc.mount(self.source, mounts.fd_path(fd), self.fstype, self.flags, self.data or None)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class NoDevices(Op):
    """`nodev` on the pot's tree and everything mounted in it so far (its /dev comes after):
    a device node that reached the tree from an image, a base or a host directory opens nothing."""

    binds: tuple[tuple[str, bool], ...] = ()  # (target, read-only) of the bind mounts in the tree

    def what(self) -> str:
        return "make the pot's tree nodev"

    def render(self, root: str) -> list[str]:
        return [shlex.join(["mount", "-o", "remount,bind,ro,nodev" if ro else "remount,bind,nodev",
                            _at(root, target)]) for target, ro in (("", False), *self.binds)]

    def apply(self, root_fd: int) -> None:
        sc.set_mount_attrs(root_fd, sc.MOUNT_ATTR_NODEV)  # recursive: the root and its mounts


@dataclass(frozen=True)
class MakeNode(Op):
    """`mknod -m 666 PATH c MAJOR MINOR`: one of the harmless character devices."""

    path: str
    major: int
    minor: int

    def what(self) -> str:
        return f"make /{self.path}"

    def render(self, root: str) -> list[str]:
        return [shlex.join(["mknod", "-m", "666", _at(root, self.path), "c", str(self.major), str(self.minor)])]

    def apply(self, root_fd: int) -> None:
        parent, name = os.path.split(self.path)
        dir_fd = mounts.open_in_root(root_fd, parent)
        old = os.umask(0)
        try:
            os.mknod(name, stat.S_IFCHR | 0o666, os.makedev(self.major, self.minor), dir_fd=dir_fd)
        finally:
            os.umask(old)
            os.close(dir_fd)


@dataclass(frozen=True)
class Symlink(Op):
    """`ln -s TARGET PATH`."""

    target: str
    path: str

    def what(self) -> str:
        return f"link /{self.path}"

    def render(self, root: str) -> list[str]:
        return [shlex.join(["ln", "-s", self.target, _at(root, self.path)])]

    def apply(self, root_fd: int) -> None:
        parent, name = os.path.split(self.path)
        dir_fd = mounts.open_in_root(root_fd, parent)
        try:
            os.symlink(self.target, name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)


def _parent_dir(root_fd: int, target: str) -> int | None:
    """The directory of in-pot `target`, resolved inside the root; None when the pot has no such
    directory (a host file it would hold is then skipped, as pot does)."""
    try:
        dir_fd = mounts.open_in_root(root_fd, os.path.dirname(target.strip("/")))
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISDIR(os.fstat(dir_fd).st_mode):
        os.close(dir_fd)
        return None
    return dir_fd


@dataclass(frozen=True)
class CopyHostFile(Op):
    """`cp --remove-destination SOURCE TARGET`: a host file into the pot before pivot_root (the
    host's /etc/resolv.conf, which pot copies at every start). The directory is resolved inside
    the pot's root; what is at the name is removed and a new file made with O_EXCL|O_NOFOLLOW,
    so a symbolic link the pot planted there is replaced, never followed. Skipped when the pot
    has no such directory, as pot does."""

    source: str
    target: str

    def what(self) -> str:
        return f"copy the host's {self.source} to /{self.target.strip('/')}"

    def render(self, root: str) -> list[str]:
        return [shlex.join(["cp", "--remove-destination", self.source, _at(root, self.target)])]

    def apply(self, root_fd: int) -> None:
        name = os.path.basename(self.target.strip("/"))
        dir_fd = _parent_dir(root_fd, self.target)
        if dir_fd is None:
            return
        try:
            with open(self.source, "rb") as f:
                data, mode = f.read(), stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                         dir_fd=dir_fd)  # the umask applies, as it does to cp
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
        finally:
            os.close(dir_fd)


@dataclass(frozen=True)
class BindHostFile(Op):
    """`mount --bind -o ro SOURCE TARGET`: a host-side file of the pot's run directory over a file of
    the pot (/etc/hosts, which ladle rewrites in place while the pot runs). The target is resolved
    inside the pot's root; it is made if missing. Skipped when the pot has no such directory."""

    source: str
    target: str

    def what(self) -> str:
        return f"mount {self.source} on /{self.target.strip('/')}"

    def render(self, root: str) -> list[str]:
        at = _at(root, self.target)
        return [shlex.join(["mount", "--bind", self.source, at]), shlex.join(["mount", "-o", "remount,bind,ro", at])]

    def apply(self, root_fd: int) -> None:
        dir_fd = _parent_dir(root_fd, self.target)
        if dir_fd is None:
            return
        os.close(dir_fd)
        try:
            fd = mounts.mount_point(root_fd, self.target, create="file")
        except OSError as e:
            if e.errno == errno.EROFS:  # missing in a read-only /etc: the pot keeps going without it
                return
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EISDIR, "not a regular file in the pot")
            sc.mount(self.source, mounts.fd_path(fd), None, sc.MS_BIND)
        finally:
            os.close(fd)
        _remount(root_fd, self.target, sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


@dataclass(frozen=True)
class Mask(Op):
    """Hide host information (Docker's masked paths): /dev/null over a file, an empty read-only
    tmpfs over a directory. Skipped when the path does not exist in this kernel."""

    path: str
    directory: bool = False

    def what(self) -> str:
        return f"mask /{self.path}"

    def render(self, root: str) -> list[str]:
        if self.directory:
            return [shlex.join(["mount", "-t", "tmpfs", "-o", "ro,size=0", "tmpfs", _at(root, self.path)])]
        return [shlex.join(["mount", "--bind", "/dev/null", _at(root, self.path)])]

    def apply(self, root_fd: int) -> None:
        try:
            fd = mounts.open_in_root(root_fd, self.path)
        except OSError:
            return
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                sc.mount("tmpfs", mounts.fd_path(fd), "tmpfs", sc.MS_RDONLY, "size=0")
            else:
                sc.mount("/dev/null", mounts.fd_path(fd), None, sc.MS_BIND)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class ReadOnly(Op):
    """Kernel knobs the pot must not turn (Docker's read-only paths): bound on themselves, then
    remounted read-only. Skipped when the path does not exist."""

    path: str

    def what(self) -> str:
        return f"make /{self.path} read-only"

    def render(self, root: str) -> list[str]:
        at = _at(root, self.path)
        return [shlex.join(["mount", "--rbind", at, at]),
                shlex.join(["mount", "-o", "remount,bind," + _options(sc.MS_RDONLY | _SYSTEM), at])]

    def apply(self, root_fd: int) -> None:
        try:
            fd = mounts.open_in_root(root_fd, self.path)
        except OSError:
            return
        try:
            sc.mount(mounts.fd_path(fd), mounts.fd_path(fd), None, sc.MS_BIND | sc.MS_REC)
        finally:
            os.close(fd)
        _remount(root_fd, self.path, sc.MS_RDONLY | _SYSTEM)


def _remount(root_fd: int, path: str, flags: int) -> None:
    """Change the flags of the mount now on top at `path` (not of what it covers)."""
    fd = mounts.open_in_root(root_fd, path)
    try:
        sc.mount(None, mounts.fd_path(fd), None, sc.MS_BIND | sc.MS_REMOUNT | flags)
    finally:
        os.close(fd)


DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
MASKED = (("proc/kcore", False), ("proc/keys", False), ("proc/timer_list", False), ("proc/sched_debug", False),
          ("proc/latency_stats", False), ("proc/acpi", True), ("proc/scsi", True), ("sys/firmware", True))
READ_ONLY = ("proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus", "proc/fs")
RESOLV_CONF = "/etc/resolv.conf"  # the host's DNS, as pot's default (dns=inherit)


def root_lines(root_mounts: list[Mount], root: str) -> list[str]:
    """The commands that mount the pot's tree itself at `root` (the snapshotter's mounts)."""
    lines = []
    for m in root_mounts or [Mount("bind", root, "/")]:
        if m.type in ("bind", "rbind", "nullfs"):
            lines.append(shlex.join(["mount", "--rbind", m.source, root]))
            if m.readonly:
                lines.append(shlex.join(["mount", "-o", "remount,bind,ro", root]))
        else:
            opts = ",".join(m.options)
            lines.append(shlex.join(["mount", "-t", m.type, *(["-o", opts] if opts else []), m.source, root]))
    return lines


def plan(spec: RuntimeSpec) -> list[Op]:
    """Everything mounted and made inside the pot's root, in order, after the root itself."""
    ops: list[Op] = [BindMount(m.source, m.target, m.readonly) if m.type in ("bind", "rbind", "nullfs")
                     else FsMount(m.type, m.source, m.target, *mounts.parse_options(m.options))
                     for m in spec.mounts]
    if not spec.read_only_at("/etc"):
        resolv = os.path.join(spec.run_dir, "resolv.conf") if spec.net.get("resolv") is not None else RESOLV_CONF
        ops.append(CopyHostFile(resolv, RESOLV_CONF.lstrip("/")))
    if spec.net.get("hosts") is not None:
        ops.append(BindHostFile(os.path.join(spec.run_dir, "hosts"), "etc/hosts"))
    ops.append(NoDevices(tuple((m.target, m.readonly) for m in spec.mounts if m.type in ("bind", "rbind", "nullfs"))))
    procfs = spec.attr_on("procfs")
    if procfs:
        ops.append(FsMount("proc", "proc", "proc", _SYSTEM))
    ops.append(FsMount("tmpfs", "tmpfs", "dev", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k"))
    ops += [MakeNode(f"dev/{name}", major, minor) for name, major, minor in DEVICES]
    ops.append(Symlink("pts/ptmx", "dev/ptmx"))
    if procfs and spec.attr_on("fdescfs"):
        ops.append(Symlink("/proc/self/fd", "dev/fd"))
        ops += [Symlink(f"/proc/self/fd/{i}", f"dev/{name}") for i, name in enumerate(("stdin", "stdout", "stderr"))]
    ops += [FsMount("devpts", "devpts", "dev/pts", sc.MS_NOSUID | sc.MS_NOEXEC,
                    "newinstance,ptmxmode=0666,mode=0620,gid=5"),
            FsMount("tmpfs", "shm", "dev/shm", _SYSTEM, "mode=1777,size=65536k"),
            FsMount("sysfs", "sysfs", "sys", sc.MS_RDONLY | _SYSTEM)]
    ops += [Mask(path, directory) for path, directory in MASKED]
    ops += [ReadOnly(path) for path in READ_ONLY]
    return ops


def build(spec: RuntimeSpec, root: str) -> None:
    """In the pot's own mount namespace (made private): its tree at `root`, then every op."""
    root_fd = mounts.mount_tree(spec.root, [], root)
    try:
        for op in plan(spec):
            try:
                op.apply(root_fd)
            except OSError as e:
                raise mounts.MountError(f"cannot {op.what()}: {e.strerror}") from None
    finally:
        os.close(root_fd)

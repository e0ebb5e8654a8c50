"""Copy files into and out of a pot without ever following a symlink out of its root.

A forked child opens the host side first (descriptors), then enters the pot's file system: the
mount namespace of its pid 1 when it runs, else a private mount namespace of its own with the
pot's tree mounted (gone when the child exits). It then chroots into the pot's root, so every
in-pot path resolves the way the pot sees it (`/` and `..` stop at the pot's root), and copies with
descriptor-relative calls: files are created with O_NOFOLLOW, directories opened with O_NOFOLLOW,
symlinks copied as symlinks, modes, owners and times preserved.
"""

from __future__ import annotations

import errno
import gc
import os
import stat
import sys
from typing import TYPE_CHECKING, NoReturn

from ladle.errors import HostError, UsageError
from ladle.hosts.linux import container, mounts
from ladle.hosts.linux import syscalls as sc

if TYPE_CHECKING:
    from ladle.hosts.base import RuntimeSpec


class CopyError(Exception):
    """Bad input (missing source, a directory in the way): reported as a usage error."""


def copy(spec: RuntimeSpec, init_pid: int | None, init_start: int | None, direction: str,
         host_path: str, pot_path: str, create_parents: bool) -> None:
    """Do the copy in a forked child; raise UsageError or HostError with one line on failure."""
    if direction not in ("in", "out"):
        raise UsageError(f"copy direction must be 'in' or 'out', not {direction!r}")
    entry = container.open_entry(init_pid, init_start, names=("mnt",))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(spec, entry, direction, host_path, pot_path, create_parents, r, w)
    os.close(w)
    if entry:
        entry.close()
    try:
        chunks = []
        while data := os.read(r, 65536):
            chunks.append(data)
    finally:
        os.close(r)
    os.waitpid(pid, 0)
    report = b"".join(chunks).decode(errors="replace").strip()
    if report.startswith("U "):
        raise UsageError(report[2:])
    if report:
        raise HostError(report[2:])


def _child(spec: RuntimeSpec, entry: container.Entry | None, direction: str, host_path: str,
           pot_path: str, create_parents: bool, r: int, w: int) -> NoReturn:
    code = 1
    gc.disable()
    try:
        os.close(r)
        if direction == "in":
            _copy_in(spec, entry, host_path, pot_path, create_parents)
        else:
            _copy_out(spec, entry, host_path, pot_path)
        code = 0
    except CopyError as e:
        os.write(w, f"U {e}".encode())
    except mounts.MountError as e:
        os.write(w, f"H pot {spec.name}: {e}".encode())
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        os.write(w, f"H cannot copy {direction}{where}: {e.strerror}".encode())
    except BaseException as e:
        os.write(w, f"H cannot copy {direction}: {type(e).__name__}: {e}".encode())
    os._exit(code)


def _enter(spec: RuntimeSpec, entry: container.Entry | None) -> None:
    """Make the pot's root our root (the host-side descriptors stay usable)."""
    if entry is not None:
        container.join(entry)
        return
    sc.unshare(sc.CLONE_NEWNS)
    mounts.make_private()
    root = os.path.join(spec.run_dir, "root")
    os.close(mounts.mount_tree(spec.root, spec.mounts, root))
    os.chroot(root)
    os.chdir("/")


def _open_dir(path: str, what: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CopyError(f"{what} {path}: no such directory") from None
    except NotADirectoryError:
        raise CopyError(f"{what} {path}: not a directory") from None


def _copy_in(spec: RuntimeSpec, entry: container.Entry | None, host_path: str, pot_path: str,
             create_parents: bool) -> None:
    src = os.path.realpath(host_path)  # the host side is the operator's: follow its links
    if not os.path.lexists(src):
        raise CopyError(f"{host_path}: no such file or directory")
    src_name = os.path.basename(src)
    if not src_name:
        raise CopyError("cannot copy the host's root directory")
    src_dir = _open_dir(os.path.dirname(src), "host directory")
    _enter(spec, entry)
    dest = "/" + pot_path.strip("/")
    if pot_path.endswith("/") or os.path.isdir(dest):
        dst_dir, name = dest, src_name
        if create_parents:
            _makedirs(dst_dir)
    else:
        dst_dir, name = os.path.dirname(dest), os.path.basename(dest)
        if create_parents:
            _makedirs(dst_dir)
    dfd = _open_dir(dst_dir, f"pot {spec.name}:")
    _copy_entry(src_dir, src_name, dfd, name)


def _copy_out(spec: RuntimeSpec, entry: container.Entry | None, host_path: str, pot_path: str,
              ) -> None:
    src = "/" + pot_path.strip("/")
    src_name = os.path.basename(src)
    if not src_name:
        raise CopyError("give a file or directory inside the pot, not its root")
    if os.path.isdir(host_path):
        dst_dir, name = _open_dir(host_path, "host directory"), src_name
    else:
        parent = os.path.dirname(os.path.abspath(host_path))
        dst_dir, name = _open_dir(parent, "host directory"), os.path.basename(host_path)
    _enter(spec, entry)
    sfd = _open_dir(os.path.dirname(src), f"pot {spec.name}:")
    try:
        os.stat(src_name, dir_fd=sfd, follow_symlinks=False)
    except FileNotFoundError:
        raise CopyError(f"pot {spec.name}: {src}: no such file or directory") from None
    _copy_entry(sfd, src_name, dst_dir, name)


def _makedirs(path: str) -> None:
    """mkdir -p inside the chroot, following the pot's symlinks (a dangling one gets its target
    made, inside the pot)."""
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(mounts.open_in_root(root, path, create="dir"))
    except (NotADirectoryError, FileExistsError):
        raise CopyError(f"{path}: not a directory") from None
    finally:
        os.close(root)


def _copy_entry(sdir: int, sname: str, ddir: int, dname: str) -> None:
    st = os.stat(sname, dir_fd=sdir, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(sname, dir_fd=sdir)
        _remove_non_dir(ddir, dname)
        os.symlink(target, dname, dir_fd=ddir)
        os.chown(dname, st.st_uid, st.st_gid, dir_fd=ddir, follow_symlinks=False)
        os.utime(dname, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=ddir, follow_symlinks=False)
    elif stat.S_ISDIR(st.st_mode):
        _copy_dir(sdir, sname, ddir, dname, st)
    elif stat.S_ISREG(st.st_mode):
        _copy_file(sdir, sname, ddir, dname, st)
    else:
        print(f"ladle: warning: {sname}: special file not copied", file=sys.stderr)


def _remove_non_dir(ddir: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=ddir, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise CopyError(f"{name}: a directory is in the way")
    os.unlink(name, dir_fd=ddir)


def _copy_file(sdir: int, sname: str, ddir: int, dname: str, st: os.stat_result) -> None:
    src = os.open(sname, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sdir)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            dst = os.open(dname, flags, 0o600, dir_fd=ddir)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.EISDIR):
                raise
            _remove_non_dir(ddir, dname)  # a symlink in the way is replaced, never followed
            dst = os.open(dname, flags | os.O_EXCL, 0o600, dir_fd=ddir)
        try:
            while os.sendfile(dst, src, None, 1 << 30):
                pass
            _set_metadata(dst, st)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _set_metadata(fd: int, st: os.stat_result) -> None:
    """Owner, mode and times of the source; last, so a directory's mtime survives its entries."""
    os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_dir(sdir: int, sname: str, ddir: int, dname: str, st: os.stat_result) -> None:
    try:
        os.mkdir(dname, 0o700, dir_fd=ddir)
    except FileExistsError:
        if not stat.S_ISDIR(os.stat(dname, dir_fd=ddir, follow_symlinks=False).st_mode):
            _remove_non_dir(ddir, dname)
            os.mkdir(dname, 0o700, dir_fd=ddir)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    src = os.open(sname, flags, dir_fd=sdir)
    try:
        dst = os.open(dname, flags, dir_fd=ddir)
        try:
            with os.scandir(src) as it:
                names = [e.name for e in it]
            for name in names:
                _copy_entry(src, name, dst, name)
            _set_metadata(dst, st)
        finally:
            os.close(dst)
    finally:
        os.close(src)

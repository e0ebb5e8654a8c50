"""Copy files into and out of a pot without ever following a symlink out of its root.

A forked child opens the host side first (descriptors), then enters the pot's file system: the
mount namespace of its pid 1 when it runs, else a private mount namespace of its own with the
pot's tree mounted (gone when the child exits). It then chroots into the pot's root, so every
in-pot path resolves the way the pot sees it (`/` and `..` stop at the pot's root), and copies with
descriptor-relative calls: every file and symbolic link is made under a fresh name (O_EXCL) and
renamed over its destination, so a FIFO, device node or symbolic link planted there is replaced,
never opened or followed; directories are opened with O_NOFOLLOW; sources are opened with
O_NONBLOCK and checked with fstat. Only files, directories and symbolic links are copied (a FIFO,
socket or device asked for is refused, one inside a directory skipped). Modes, owners and times
are preserved, except that copy-out drops setuid and setgid unless asked to keep them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import stat
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from ladle.errors import HostError, UsageError
from ladle.hosts.linux import container, mounts
from ladle.hosts.linux import syscalls as sc

if TYPE_CHECKING:
    from ladle.hosts.base import RuntimeSpec

_SETID = stat.S_ISUID | stat.S_ISGID


class CopyError(Exception):
    """Bad input (missing source, a directory in the way): reported as a usage error."""


def copy(spec: RuntimeSpec, init_pid: int | None, init_start: int | None, direction: str,
         host_path: str, pot_path: str, create_parents: bool, keep_setuid: bool = False) -> None:
    """Do the copy in a forked child; raise UsageError or HostError with one line on failure."""
    if direction not in ("in", "out"):
        raise UsageError(f"copy direction must be 'in' or 'out', not {direction!r}")
    entry = container.open_entry(init_pid, init_start, names=("mnt",))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(spec, entry, direction, host_path, pot_path, create_parents, keep_setuid, r, w)
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
           pot_path: str, create_parents: bool, keep_setuid: bool, r: int, w: int) -> NoReturn:
    code = 1
    gc.disable()
    try:
        os.close(r)
        if direction == "in":
            _copy_in(spec, entry, host_path, pot_path, create_parents)
        else:
            _copy_out(spec, entry, host_path, pot_path, keep_setuid)
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
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC)
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
    _copy_entry(src_dir, src_name, dfd, name, False, host_path)


def _copy_out(spec: RuntimeSpec, entry: container.Entry | None, host_path: str, pot_path: str,
              keep_setuid: bool) -> None:
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
    _copy_entry(sfd, src_name, dst_dir, name, not keep_setuid, f"pot {spec.name}: {src}")


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


def _copy_entry(sdir: int, sname: str, ddir: int, dname: str, strip: bool, top: str | None = None) -> None:
    """Copy one entry; `top` names the entry the user asked for (its special file is refused,
    one met inside a directory is skipped with a warning); `strip` drops setuid and setgid."""
    st = os.stat(sname, dir_fd=sdir, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(sname, dir_fd=sdir)

        def make(tmp: str) -> None:
            os.symlink(target, tmp, dir_fd=ddir)
            os.chown(tmp, st.st_uid, st.st_gid, dir_fd=ddir, follow_symlinks=False)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=ddir, follow_symlinks=False)
        _replace(ddir, dname, make)
    elif stat.S_ISDIR(st.st_mode):
        _copy_dir(sdir, sname, ddir, dname, st, strip)
    elif not stat.S_ISREG(st.st_mode):
        _special(st, sname, top)
    else:
        _copy_file(sdir, sname, ddir, dname, strip, top)


def _special(st: os.stat_result, name: str, top: str | None) -> None:
    kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
            else "a device node")
    if top is not None:
        raise CopyError(f"{top}: {kind}; only files, directories and symbolic links are copied")
    print(f"ladle: warning: {name}: {kind}, not copied", file=sys.stderr)


def _replace(ddir: int, name: str, make: Callable[[str], None]) -> None:
    """Make the new entry under a fresh name, then rename it over `name`: whatever is there (a
    FIFO, a device node, a symbolic link the pot planted) is replaced, never opened or followed."""
    tmp = f".ladle-copy.{os.urandom(6).hex()}"
    try:
        make(tmp)
        os.rename(tmp, name, src_dir_fd=ddir, dst_dir_fd=ddir)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=ddir)
        if isinstance(e, IsADirectoryError):
            raise CopyError(f"{name}: a directory is in the way") from None
        raise


def _remove_non_dir(ddir: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=ddir, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise CopyError(f"{name}: a directory is in the way")
    os.unlink(name, dir_fd=ddir)


def _copy_file(sdir: int, sname: str, ddir: int, dname: str, strip: bool, top: str | None) -> None:
    # O_NONBLOCK and fstat: the entry may have become a FIFO or a device since it was looked at
    src = os.open(sname, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=sdir)
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode):
            _special(st, sname, top)
            return

        def make(tmp: str) -> None:
            dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=ddir)
            try:
                while os.sendfile(dst, src, None, 1 << 30):
                    pass
                _set_metadata(dst, st, strip)
            finally:
                os.close(dst)
        _replace(ddir, dname, make)
    finally:
        os.close(src)


def _set_metadata(fd: int, st: os.stat_result, strip: bool) -> None:
    """Owner, mode and times of the source; last, so a directory's mtime survives its entries."""
    os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~(_SETID if strip else 0))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_dir(sdir: int, sname: str, ddir: int, dname: str, st: os.stat_result, strip: bool) -> None:
    try:
        os.mkdir(dname, 0o700, dir_fd=ddir)
    except FileExistsError:
        if not stat.S_ISDIR(os.stat(dname, dir_fd=ddir, follow_symlinks=False).st_mode):
            _remove_non_dir(ddir, dname)
            os.mkdir(dname, 0o700, dir_fd=ddir)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    src = os.open(sname, flags, dir_fd=sdir)
    try:
        dst = os.open(dname, flags, dir_fd=ddir)
        try:
            with os.scandir(src) as it:
                names = [e.name for e in it]
            for name in names:
                _copy_entry(src, name, dst, name, strip)
            _set_metadata(dst, st, strip)
        finally:
            os.close(dst)
    finally:
        os.close(src)

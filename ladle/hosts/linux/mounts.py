"""Build a pot's file system inside its own mount namespace, then pivot into it.

Everything here runs in a process that has already unshared its mount namespace and made `/`
rprivate, so no mount made here is ever visible on the host, and all of them vanish with the
namespace when the pot's last process dies (even if everything is SIGKILLed).

Mount targets inside the pot are resolved one component at a time with O_PATH|O_NOFOLLOW from a
descriptor of the pot's root, treating symlinks as the pot would (absolute ones restart at the pot's
root, `..` stops there), and the mount is made on /proc/self/fd/N: a symlink planted in an image can
never redirect a mount onto the host.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable

from ladle.hosts.linux import syscalls as sc
from ladle.storage.snapshotter import Mount
from ladle.supervise.spawn import SpawnError


class MountError(SpawnError):
    """A mount could not be made; the message is one line for the user."""


_FLAG_OPTIONS = {
    "ro": (sc.MS_RDONLY, True), "rw": (sc.MS_RDONLY, False),
    "nosuid": (sc.MS_NOSUID, True), "suid": (sc.MS_NOSUID, False),
    "nodev": (sc.MS_NODEV, True), "dev": (sc.MS_NODEV, False),
    "noexec": (sc.MS_NOEXEC, True), "exec": (sc.MS_NOEXEC, False),
    "noatime": (sc.MS_NOATIME, True), "nodiratime": (sc.MS_NODIRATIME, True),
    "relatime": (sc.MS_RELATIME, True), "strictatime": (sc.MS_STRICTATIME, True),
    "sync": (sc.MS_SYNCHRONOUS, True), "dirsync": (sc.MS_DIRSYNC, True),
}
_REMOUNT_FLAGS = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


def parse_options(options: Iterable[str]) -> tuple[int, str]:
    """Split mount options into mount(2) flags and the data string for the file system."""
    flags = 0
    data = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            bit, on = _FLAG_OPTIONS[opt]
            flags = flags | bit if on else flags & ~bit
        elif opt not in ("bind", "rbind", "defaults"):
            data.append(opt)
    return flags, ",".join(data)


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def open_in_root(root_fd: int, path: str, create: str | None = None, mode: int = 0o755) -> int:
    """An O_PATH descriptor of `path` inside the tree whose root is `root_fd`.

    `create` is None (must exist), 'dir' (make missing directories) or 'file' (missing parents
    are directories, the last component an empty file). Never leaves the tree.
    """
    todo = [p for p in path.split("/") if p and p != "."]
    stack = [os.dup(root_fd)]
    links = 0
    try:
        while todo:
            part = todo.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            cur = stack[-1]
            try:
                fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            except FileNotFoundError:
                if create is None:
                    raise
                if create == "file" and not todo:
                    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, 0o644, dir_fd=cur))
                else:
                    os.mkdir(part, mode, dir_fd=cur)
                fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                links += 1
                if links > 40:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(part, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo = [p for p in target.split("/") if p and p != "."] + todo
                continue
            if todo and not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(fd)
        return os.dup(stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


def mount_point(root_fd: int, path: str, create: str | None = "dir") -> int:
    """`open_in_root` for a mount point, which must not be the pot's root itself: a link planted in
    the pot (`ln -s / /evil`) would otherwise put the mount over the pot's whole tree."""
    fd = open_in_root(root_fd, path, create)
    here, top = os.fstat(fd), os.fstat(root_fd)
    if (here.st_dev, here.st_ino) == (top.st_dev, top.st_ino):
        os.close(fd)
        raise MountError(f"mount point {path} leads to the pot's root directory (through a link in the pot)")
    return fd


def _describe(m: Mount) -> str:
    return f"cannot mount {m.type} {m.source} on {m.target}"


def _mount_one(m: Mount, target: str) -> None:
    flags, data = parse_options(m.options)
    if m.type in ("bind", "rbind", "nullfs"):
        sc.mount(m.source, target, None, sc.MS_BIND | sc.MS_REC)
        if flags & _REMOUNT_FLAGS:
            sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | (flags & _REMOUNT_FLAGS))
    elif m.type == "tmpfs":
        sc.mount("tmpfs", target, "tmpfs", flags | sc.MS_NOSUID | sc.MS_NODEV, data or None)
    else:
        sc.mount(m.source, target, m.type, flags, data or None)


def mount_tree(root: list[Mount], mounts: list[Mount], root_path: str) -> int:
    """Mount the pot's root and then its mounts (fscomps, mount-ins) in order at `root_path`;
    returns an O_PATH descriptor of the finished root."""
    os.makedirs(root_path, exist_ok=True)
    if not root:  # a plain directory: bind it onto itself so that it is a mount point
        root = [Mount("bind", root_path, "/")]
    for m in root:
        try:
            _mount_one(m, root_path)
        except OSError as e:
            raise MountError(f"{_describe(m)}: {e.strerror}") from None
    root_fd = os.open(root_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for m in mounts:
        try:
            is_bind = m.type in ("bind", "rbind", "nullfs")
            kind = "dir" if not is_bind or stat.S_ISDIR(os.stat(m.source).st_mode) else "file"
            fd = mount_point(root_fd, m.target, create=kind)
            try:
                flags, _ = parse_options(m.options)
                if m.type in ("bind", "rbind", "nullfs"):
                    sc.mount(m.source, fd_path(fd), None, sc.MS_BIND | sc.MS_REC)
                    if flags & _REMOUNT_FLAGS:  # remount the new mount, not what it covers
                        top = open_in_root(root_fd, m.target)
                        try:
                            sc.mount(None, fd_path(top), None,
                                     sc.MS_BIND | sc.MS_REMOUNT | (flags & _REMOUNT_FLAGS))
                        finally:
                            os.close(top)
                else:
                    _mount_one(m, fd_path(fd))
            finally:
                os.close(fd)
        except OSError as e:
            raise MountError(f"{_describe(m)}: {e.strerror}") from None
    return root_fd


# Entering the tree ---------------------------------------------------------------------------------

def make_private() -> None:
    """Stop mount events from propagating to or from the host (the caller owns a new mount ns)."""
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)


def pivot(root_path: str) -> None:
    """Make `root_path` the root and detach the host's tree from this namespace entirely."""
    os.chdir(root_path)
    try:
        sc.pivot_root(".", ".")  # the old root ends up stacked on '.', ready to be detached
        sc.umount2(".", sc.MNT_DETACH)
    except OSError as e:
        if e.errno != errno.EINVAL:  # EINVAL: the host root is not pivotable (initramfs)
            raise MountError(f"cannot pivot_root: {e.strerror}") from None
        sc.mount(".", "/", None, sc.MS_MOVE)
        os.chroot(".")
    os.chdir("/")

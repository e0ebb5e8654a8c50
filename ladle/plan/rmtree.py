"""Remove a directory tree without recursion, without following a symbolic link, on one file system.

`shutil.rmtree` recurses once per level (Python 3.11), so a 4000-deep tree from a hostile tarball
raises RecursionError; and it keeps one fd per level open. Here the walk keeps, per level, only
the names still to visit and the (device, inode) of the directory: it goes down with
`openat(O_NOFOLLOW)` and back up with `openat("..")`, checked against the recorded inode, so at
most two descriptors are open however deep the tree, and a directory swapped for a symbolic link
or moved mid-walk is never followed. A mount point inside the tree is refused, not emptied.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str) -> None:
    """Remove `path` and everything under it; a missing path is fine, a file is unlinked."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    walk = _Walk(os.open(path, _DIR), st.st_dev)
    try:
        walk.empty()
    finally:
        os.close(walk.fd)
    os.rmdir(path)


class _Walk:
    """The one directory open at a time (`fd`), moved down and up the tree."""

    def __init__(self, fd: int, dev: int) -> None:
        self.fd = fd
        self.dev = dev

    def _move(self, name: str) -> None:
        new = os.open(name, _DIR, dir_fd=self.fd)
        os.close(self.fd)
        self.fd = new

    def empty(self) -> None:
        pending = _clear(self.fd)
        above: list[tuple[str, list[str], int]] = []  # (name entered, parent's names left, its inode)
        while pending or above:
            if pending:
                name = pending.pop()
                above.append((name, pending, os.fstat(self.fd).st_ino))
                self._move(name)
                if os.fstat(self.fd).st_dev != self.dev:
                    raise OSError(errno.EBUSY, f"a file system is mounted at {name}")
                pending = _clear(self.fd)
                continue
            name, pending, ino = above.pop()
            self._move("..")
            if os.fstat(self.fd).st_ino != ino:
                raise OSError(errno.ESTALE, "the tree was moved while it was being removed")
            os.rmdir(name, dir_fd=self.fd)


def _clear(fd: int) -> list[str]:
    """Unlink every non-directory in the directory at `fd`; returns its subdirectories' names."""
    subdirs = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=fd)
    return subdirs

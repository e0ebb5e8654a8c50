"""A layer tar of the changes between two whole trees: a pot's tree and the one it was made from
(for `ladle commit` and `ladle build` where a pot is not an overlayfs upper: ZFS clones, the
copies of FreeBSD's dir storage).

What changed is added (a directory's header before its children, and the unchanged directories
above a change too, so the layer stands alone); what is gone becomes image-spec's `.wh.NAME`;
a path whose type changed is whited out and added again, so no extractor has to replace a
directory by something else. An emptied or replaced directory is its deletions, not an opaque
marker: that is always correct and needs no judgement of "replaced wholesale". Hard links among
the added files stay links.

Unchanged, with `clone` (both trees are ZFS file systems grown from one snapshot, so an
untouched file keeps its object number and its ctime): the same inode number, ctime, mtime,
size, mode, owner and link count. The ctime is the proof: the kernel sets it to the current time
at every change of content or metadata, and nothing in a pot can set it (utimes sets atime and
mtime only; the clock is not the pot's: Linux pots lack CAP_SYS_TIME, a jail cannot set it), so
a changed file has a ctime later than the snapshot was taken. An object number freed and reused
gets a new ctime too. Without `clone` (full copies, whose inode numbers and ctimes are their
own): the same type, mode, owner, size, mtime and link count, and then the same contents (a
file's bytes, a link's target), since a pot's root can set an mtime back; a directory with the
same metadata is unchanged (what it holds is compared below it). A false "changed" only makes
the layer larger.

Both trees are read as hostile: the pot's root made one of them, and an image's layers the
other. The walk goes by directory descriptors (O_DIRECTORY | O_NOFOLLOW, lstat relative to
them), files are opened with O_NOFOLLOW and checked to be the inode the walk saw, a symbolic
link is read as a link and never followed, and the walk is bounded: no deeper than `max_depth`,
at most `max_members` entries and `max_size` bytes of files in the layer. Left out, as from an
overlay upper: the files ladle writes into a pot (`skip`), sockets, device nodes and fifos (what
one replaced is deleted).
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ladle.errors import HostError, UsageError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20
_CARRIED = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)


@dataclass(frozen=True)
class Bounds:
    max_size: int
    max_members: int
    max_depth: int


@dataclass
class _Dir:
    """A directory being walked: its descriptors on both sides (-1: not a directory in the parent)."""
    rel: str
    parent_fd: int
    fd: int
    st: os.stat_result
    names: Iterator[tuple[str, bool]] = field(default_factory=lambda: iter(()))
    written: bool = False


def _scan(fd: int) -> dict[str, os.stat_result]:
    if fd < 0:
        return {}
    return {n: os.stat(n, dir_fd=fd, follow_symlinks=False) for n in os.listdir(fd)}


@contextmanager
def _opened(name: str, dir_fd: int, st: os.stat_result) -> Iterator[int]:
    """The regular file the walk saw as `st`, opened without following a link."""
    fd = os.open(name, _FILE, dir_fd=dir_fd)
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_ino, now.st_dev, now.st_size) != (st.st_ino, st.st_dev,
                                                                                      st.st_size):
            raise HostError(f"{name} changed while the pot's tree was read")
        yield fd
    finally:
        os.close(fd)


def _same_bytes(name: str, pfd: int, tfd: int, p: os.stat_result, t: os.stat_result) -> bool:
    with _opened(name, pfd, p) as a, _opened(name, tfd, t) as b:
        while True:
            x, y = os.read(a, _CHUNK), os.read(b, _CHUNK)
            if x != y:
                return False
            if not x:
                return True


def _unchanged(name: str, pfd: int, tfd: int, p: os.stat_result, t: os.stat_result, clone: bool) -> bool:
    if stat.S_IFMT(p.st_mode) != stat.S_IFMT(t.st_mode):
        return False
    meta = (p.st_mode, p.st_uid, p.st_gid, p.st_size, p.st_mtime_ns, p.st_nlink) == \
        (t.st_mode, t.st_uid, t.st_gid, t.st_size, t.st_mtime_ns, t.st_nlink)
    if not meta:
        return False
    if clone:
        return (p.st_ino, p.st_ctime_ns) == (t.st_ino, t.st_ctime_ns)
    if stat.S_ISLNK(t.st_mode):
        return os.readlink(name, dir_fd=pfd) == os.readlink(name, dir_fd=tfd)
    return not stat.S_ISREG(t.st_mode) or _same_bytes(name, pfd, tfd, p, t)


class _Writer:
    """The layer tar, with its bounds counted as it grows."""

    def __init__(self, tar: tarfile.TarFile, bounds: Bounds) -> None:
        self.tar, self.bounds = tar, bounds
        self.members = self.size = 0
        self.links: dict[tuple[int, int], str] = {}

    def _count(self, size: int = 0) -> None:
        self.members += 1
        self.size += size
        if self.members > self.bounds.max_members:
            raise UsageError(f"the pot's changes have more than {self.bounds.max_members} entries (max_tar_members"
                             " in the configuration)")
        if self.size > self.bounds.max_size:
            raise UsageError("the pot's changes add up to more than max_unpacked_size bytes")

    def whiteout(self, rel: str, name: str) -> None:
        self._count()
        self.tar.addfile(tarfile.TarInfo(os.path.join(rel, ".wh." + name)))

    def entry(self, arc: str, name: str, dir_fd: int, st: os.stat_result) -> None:
        info = tarfile.TarInfo(arc)
        info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
        elif st.st_nlink > 1 and (st.st_ino, st.st_dev) in self.links:
            info.type, info.linkname = tarfile.LNKTYPE, self.links[(st.st_ino, st.st_dev)]
        else:
            info.size = st.st_size
            self._count(st.st_size)
            if st.st_nlink > 1:
                self.links[(st.st_ino, st.st_dev)] = arc
            with _opened(name, dir_fd, st) as fd, os.fdopen(os.dup(fd), "rb") as f:
                self.tar.addfile(info, f)
            return
        self._count()
        self.tar.addfile(info)


def write_diff(parent: str, top: str, out: str, *, clone: bool, bounds: Bounds, skip: frozenset[str]) -> None:
    """The changes from the tree at `parent` to the tree at `top` as a layer tar at `out`."""
    try:
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
            _Diff(_Writer(tar, bounds), clone, bounds, skip).walk(parent, top)
    except OSError as e:
        raise HostError(f"cannot read the pot's changes in {top}: {e.strerror or e}") from None


class _Diff:
    """Depth first, names sorted (a stable tar), with an explicit stack of the directories
    entered: a deep tree costs no recursion, and two descriptors per level."""

    def __init__(self, w: _Writer, clone: bool, bounds: Bounds, skip: frozenset[str]) -> None:
        self.w, self.clone, self.bounds, self.skip = w, clone, bounds, skip
        self.stack: list[_Dir] = []

    def walk(self, parent: str, top: str) -> None:
        try:
            self._enter(_Dir("", os.open(parent, _DIR), -1, os.stat(top), written=True), top, None)
            while self.stack:
                d = self.stack[-1]
                child = next(d.names, None)
                if child is None:
                    _close(self.stack.pop())
                    continue
                name, written = child
                if len(self.stack) >= self.bounds.max_depth:
                    raise UsageError(f"the pot's tree is deeper than {self.bounds.max_depth} directories at"
                                     f" /{d.rel}/{name} (max_tar_depth in the configuration)")
                st = os.stat(name, dir_fd=d.fd, follow_symlinks=False)
                sub = _Dir(os.path.join(d.rel, name), _parent_dir(d.parent_fd, name), -1, st, written=written)
                self._enter(sub, name, d.fd)
        finally:
            while self.stack:
                _close(self.stack.pop())

    def _enter(self, d: _Dir, name: str, dir_fd: int | None) -> None:
        """Open the directory the walk saw as `d.st` (never through a link) and start on it."""
        try:
            d.fd = os.open(name, _DIR, dir_fd=dir_fd)
            if not os.path.samestat(os.fstat(d.fd), d.st):
                raise HostError(f"/{d.rel} changed while the pot's tree was read")
        except BaseException:
            _close(d)
            raise
        self.stack.append(d)
        d.names = self._entries(d)

    def _headers(self) -> None:
        """The directories above an entry that are not in the layer yet (their metadata as now)."""
        for i, d in enumerate(self.stack):
            if not d.written:
                up = self.stack[i - 1]
                self.w.entry(d.rel, os.path.basename(d.rel), up.fd, d.st)
                d.written = True

    def _entries(self, d: _Dir) -> Iterator[tuple[str, bool]]:
        """Compare one directory's entries, writing what changed; yields each subdirectory to
        enter, and whether it was written (it changed)."""
        ps, ts = _scan(d.parent_fd), _scan(d.fd)
        for name in sorted(ps.keys() | ts.keys()):
            arc = os.path.join(d.rel, name)
            if arc in self.skip:
                continue
            p, t = ps.get(name), ts.get(name)
            if t is not None and stat.S_IFMT(t.st_mode) not in _CARRIED:
                t = None  # a socket, device or fifo: not in a layer, and what it replaced is gone
            if p is not None and (t is None or stat.S_IFMT(p.st_mode) != stat.S_IFMT(t.st_mode)):
                self._headers()
                self.w.whiteout(d.rel, name)
                p = None
            if t is None:
                continue
            changed = p is None or not _unchanged(name, d.parent_fd, d.fd, p, t, self.clone)
            if changed:
                self._headers()
                self.w.entry(arc, name, d.fd, t)
            if stat.S_ISDIR(t.st_mode):
                yield name, changed


def _close(d: _Dir) -> None:
    for fd in (d.fd, d.parent_fd):
        if fd >= 0:
            os.close(fd)


def _parent_dir(parent_fd: int, name: str) -> int:
    """The same directory in the parent tree, or -1 if it is not a directory there (a link is
    not followed: it was whited out and the directory added whole)."""
    if parent_fd < 0:
        return -1
    try:
        return os.open(name, _DIR, dir_fd=parent_fd)
    except OSError:
        return -1

"""Safe extraction of root-file-system tarballs (DESIGN §10): a tarball is untrusted input.

The rules, all checked for every member before the first write (so a refused tarball leaves the
destination untouched):

- names are relative and never contain '..'; absolute names are refused, not stripped;
- only files, directories, symlinks and hard links: device nodes and fifos are refused (the host
  driver makes the pot's /dev);
- nothing is written through a symlink: a member below a symlink (one from the archive or one
  already in the destination) is refused, and a file or symlink already at a member's own path is
  replaced, never followed;
- a symlink's target is resolved as it will be inside the pot (an absolute target starts at the
  pot's root) through the tree's other symlinks; one that climbs above the root is refused;
- a hard link must name a regular file inside the tree.

Modes (set-id bits included), numeric ownership (when run as root), mtimes, symlinks and hard
links are preserved. ``tarfile``'s own extraction is not used because it writes through a
symlink already at a member's path and follows hard links to symlinks.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import tarfile
from collections import deque
from dataclasses import dataclass

from ladle.errors import HostError, UsageError
from ladle.plan.steps import Context, Step

_MAX_HOPS = 40  # symlinks followed while resolving one target, as the kernel's ELOOP limit

Parts = tuple[str, ...]


def _unsafe(name: str, why: str) -> UsageError:
    return UsageError(f"unsafe tar member {name!r}: {why}")


def _parts(name: str, member: str) -> Parts:
    """A member or hard-link name as path components; refuses absolute names and '..'."""
    if name.startswith("/"):
        raise _unsafe(member, "absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise _unsafe(member, "path escapes the destination")
    return parts


@dataclass
class _Node:
    kind: str  # 'dir', 'file', 'sym' or 'other'
    target: str = ""  # a symlink's target


class _Tree:
    """The destination as it will be after extraction: archive members over what it holds now."""

    def __init__(self, dest: str) -> None:
        self.dest = dest
        self.nodes: dict[Parts, _Node | None] = {(): _Node("dir")}
        self.fresh: set[Parts] = set()  # paths replaced by a member: what dest has there is gone

    def get(self, parts: Parts) -> _Node | None:
        if parts in self.nodes:
            return self.nodes[parts]
        if any(parts[:i] in self.fresh for i in range(1, len(parts) + 1)):
            return None
        # Callers walk paths from the root, so no prefix of `parts` is a symlink here.
        path = os.path.join(self.dest, *parts)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            node = None
        else:
            if stat.S_ISLNK(st.st_mode):
                node = _Node("sym", os.readlink(path))
            else:
                node = _Node("dir" if stat.S_ISDIR(st.st_mode) else
                             "file" if stat.S_ISREG(st.st_mode) else "other")
        self.nodes[parts] = node
        return node

    def set(self, parts: Parts, node: _Node) -> None:
        old = self.get(parts)
        if old is None or old.kind != "dir":
            self.fresh.add(parts)
        self.nodes[parts] = node

    def walk_parents(self, parts: Parts, member: str) -> None:
        """Refuse a path below a symlink or a file; missing parents become directories."""
        for i in range(len(parts)):
            prefix = parts[:i]
            node = self.get(prefix)
            if node is None:
                self.set(prefix, _Node("dir"))
            elif node.kind == "sym":
                raise _unsafe(member, f"path goes through the symlink {'/'.join(prefix)!r}")
            elif node.kind != "dir":
                raise _unsafe(member, f"{'/'.join(prefix)!r} is not a directory")

    def escapes(self, base: Parts, target: str) -> bool:
        """Whether `target`, read in directory `base` as inside the pot, climbs above its root."""
        stack = [] if target.startswith("/") else list(base)
        todo = deque(target.split("/"))
        hops = 0
        while todo:
            c = todo.popleft()
            if c in ("", "."):
                continue
            if c == "..":
                if not stack:
                    return True
                stack.pop()
                continue
            stack.append(c)
            node = self.get(tuple(stack))
            if node is not None and node.kind == "sym":
                hops += 1
                if hops > _MAX_HOPS:
                    return False  # a loop: the kernel answers ELOOP, nothing is reached
                stack.pop()
                if node.target.startswith("/"):
                    stack = []
                todo.extendleft(reversed(node.target.split("/")))
        return False


def check_members(members: list[tarfile.TarInfo], dest: str) -> None:
    """Raise UsageError naming the first unsafe member; see the module docstring for the rules."""
    tree = _Tree(dest)
    links: dict[Parts, str] = {}
    for m in members:
        parts = _parts(m.name, m.name)
        if m.ischr() or m.isblk():
            raise _unsafe(m.name, "device nodes are not allowed")
        if m.isfifo():
            raise _unsafe(m.name, "fifos are not allowed")
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            raise _unsafe(m.name, "unsupported member type")
        if not parts and not m.isdir():
            raise _unsafe(m.name, "the destination itself can only be a directory")
        tree.walk_parents(parts, m.name)
        existing = tree.get(parts)
        if existing is not None and existing.kind == "dir" and not m.isdir():
            raise _unsafe(m.name, "it would replace a directory")
        if m.isdir():
            tree.set(parts, _Node("dir"))
        elif m.issym():
            tree.set(parts, _Node("sym", m.linkname))
            links[parts] = m.name
        elif m.islnk():
            target = _parts(m.linkname, m.name)
            tree.walk_parents(target, m.name)
            node = tree.get(target)
            if target == parts or node is None or node.kind != "file":
                raise _unsafe(m.name, f"hard link target {m.linkname!r} is not a regular file in the tree")
            tree.set(parts, _Node("file"))
        else:
            tree.set(parts, _Node("file"))
    for parts, name in links.items():
        node = tree.nodes.get(parts)
        if node is not None and node.kind == "sym" and tree.escapes(parts[:-1], node.target):
            raise _unsafe(name, f"symlink target {node.target!r} escapes the destination")


def extract(archive: str, dest: str) -> None:
    """Check every member of `archive` (any compression tarfile reads), then extract into `dest`."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            extract_from(tar, dest)
    except tarfile.TarError as e:
        raise UsageError(f"{archive}: not a readable tar archive ({e})") from None
    except FileNotFoundError:
        raise UsageError(f"{archive}: no such file") from None


def extract_from(tar: tarfile.TarFile, dest: str) -> None:
    """As `extract`, for an open archive (it is read twice: to check, then to write)."""
    members = tar.getmembers()
    check_members(members, dest)
    as_root = os.geteuid() == 0
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    for m in members:
        parts = _parts(m.name, m.name)
        path = os.path.join(dest, *parts)
        try:
            _make_parents(dest, parts[:-1])
            if m.isdir():
                if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
                    os.unlink(path)  # replaced, never followed
                if not os.path.lexists(path):
                    os.mkdir(path, 0o700)
                dirs.append((path, m))
                continue
            if os.path.lexists(path):
                os.unlink(path)
            if m.isreg():
                _write(tar, m, path, as_root)
            elif m.issym():
                os.symlink(m.linkname, path)
                if as_root:
                    os.lchown(path, m.uid, m.gid)
                if os.utime in os.supports_follow_symlinks:
                    os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
            else:
                os.link(os.path.join(dest, *_parts(m.linkname, m.name)), path, follow_symlinks=False)
        except OSError as e:
            raise HostError(f"cannot extract {m.name!r} into {dest}: {e.strerror}") from None
    for path, m in reversed(dirs):  # deepest last-listed first, so parents' mtimes stick
        if as_root:
            os.chown(path, m.uid, m.gid)
        os.chmod(path, m.mode & 0o7777)
        os.utime(path, (m.mtime, m.mtime))


def _make_parents(dest: str, parts: Parts) -> None:
    path = dest
    for p in parts:
        path = os.path.join(path, p)
        if os.path.islink(path):  # checked already; a second look costs nothing
            raise HostError(f"refusing to extract through the symlink {path}")
        if not os.path.lexists(path):
            os.mkdir(path, 0o755)


def _write(tar: tarfile.TarFile, m: tarfile.TarInfo, path: str, as_root: bool) -> None:
    src = tar.extractfile(m)
    if src is None:
        raise HostError(f"cannot read tar member {m.name!r}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with src, os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        if as_root:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode & 0o7777)  # after chown, which clears set-id bits
        os.utime(fd, (m.mtime, m.mtime))


@dataclass
class ExtractTar(Step):
    """Unpack a root-file-system tarball safely; undo is the caller's (the new layer's removal)."""

    archive: str
    dest: str

    def render(self) -> list[str]:
        return [shlex.join(["tar", "-x", "-p", "-f", self.archive, "-C", self.dest])]

    def apply(self, ctx: Context) -> None:
        extract(self.archive, self.dest)

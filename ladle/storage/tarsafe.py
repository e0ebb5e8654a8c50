"""Safe extraction of root-file-system tarballs (DESIGN §10): a tarball is untrusted input.

The rules, all checked for every member before the first write (so a refused tarball leaves the
destination untouched):

- names are relative and never contain '..'; absolute names are refused, not stripped;
- only files, directories, symlinks and hard links: device nodes and fifos are refused, but for
  device nodes under /dev, which are left out (a debootstrapped tree has them, and the host
  driver makes the pot's /dev: what was there would be hidden anyway);
- nothing is written through a symlink: a member below a symlink (one from the archive or one
  already in the destination) is refused, and a file or symlink already at a member's own path is
  replaced, never followed;
- a symlink's target is resolved as it will be inside the pot (an absolute target starts at the
  pot's root) through the tree's other symlinks; one that climbs above the root is refused;
- a hard link must name a regular file inside the tree;
- no component is longer than NAME_MAX and no path than PATH_MAX (of the destination's file
  system), no path is deeper than `max_depth` components, and there are at most `max_members`;
- the files add up to at most `max_size` bytes, and fit (`copies` times: dir storage keeps a
  snapshot copy) in the destination's free space with a margin kept free. Free space is checked
  again as data is written, so a disk that fills meanwhile stops the extraction, not the host.

A truncated or corrupt archive, an empty file or one that is not a tar archive at all is one
line of error; one that fails part way leaves what it wrote to the caller's undo (the new
layer's removal).

An image layer (`extract_layer`) follows the same rules and also: its whiteouts (`.wh.NAME`) and
opaque directories (`.wh..wh..opq`, image-spec) are checked like members (the path to them
goes through no symlink) and applied, before the layer's own members, either by deleting what
they hide from the full tree the layer is unpacked over (`full`) or, for an overlayfs upper
directory (`overlay`), as overlayfs's own whiteouts (a 0/0 character device) and opaque marks
(the `trusted.overlay.opaque` xattr); a symlink loop is refused (nothing useful is ever a loop,
and a base's rules leave it to the kernel's ELOOP).

Modes (set-id bits included), numeric ownership (when run as root), mtimes, symlinks and hard
links are preserved. ``tarfile``'s own extraction is not used because it writes through a
symlink already at a member's path and follows hard links to symlinks.
"""

from __future__ import annotations

import io
import lzma
import os
import shlex
import stat
import tarfile
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ladle.config import Config
from ladle.errors import HostError, UsageError
from ladle.names import short, shown
from ladle.plan.steps import Context, Step

_MAX_HOPS = 40  # symlinks followed while resolving one target, as the kernel's ELOOP limit
_CHUNK = 1 << 20
_CHECK_EVERY = 64 << 20  # bytes written between two looks at the free space
_MARGIN = 1 << 30  # kept free: at most this, and at most a twentieth of the file system
# What reading a damaged archive raises: tarfile's own errors, a compressed stream that ends
# early (EOFError) or is corrupt (zlib, lzma, bz2's and gzip's OSError).
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}


@dataclass(frozen=True)
class Limits:
    """Caps on one tarball (the configuration's max_unpacked_size, max_tar_members and
    max_tar_depth), and how many copies of its tree the storage keeps."""

    max_size: int = Config.max_unpacked_size
    max_members: int = Config.max_tar_members
    max_depth: int = Config.max_tar_depth
    copies: int = 1

Parts = tuple[str, ...]


def _unsafe(name: str, why: str) -> UsageError:
    return UsageError(f"unsafe tar member {short(name, 80)}: {why}")


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
        self.opaque: set[Parts] = set()  # directories whose children in dest are hidden (a layer's)
        self.loop = False  # a symlink loop was met while resolving a target

    def get(self, parts: Parts) -> _Node | None:
        if parts in self.nodes:
            return self.nodes[parts]
        if any(parts[:i] in self.fresh for i in range(1, len(parts) + 1)):
            return None
        if any(parts[:i] in self.opaque for i in range(len(parts))):
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
                    self.loop = True
                    return False  # a loop: the kernel answers ELOOP, nothing is reached
                stack.pop()
                if node.target.startswith("/"):
                    stack = []
                todo.extendleft(reversed(node.target.split("/")))
        return False


@dataclass
class Whiteouts:
    """A layer's deletions: paths it hides (`.wh.NAME`) and directories it makes opaque."""

    hidden: list[Parts]
    opaque: list[Parts]


WH = ".wh."
OPAQUE = ".wh..wh..opq"


def split_whiteouts(members: list[tarfile.TarInfo]) -> tuple[list[tarfile.TarInfo], Whiteouts]:
    """A layer's members without its whiteout entries, and what those entries delete."""
    kept, wh = [], Whiteouts([], [])
    for m in members:
        parts = _parts(m.name, m.name)
        base = parts[-1] if parts else ""
        if not base.startswith(WH):
            kept.append(m)
        elif base == OPAQUE:
            wh.opaque.append(parts[:-1])
        elif base == WH or base[len(WH):].startswith(WH):
            raise _unsafe(m.name, "an invalid whiteout name")
        else:
            wh.hidden.append((*parts[:-1], base[len(WH):]))
    return kept, wh


def check_members(members: list[tarfile.TarInfo], dest: str, limits: Limits = Limits(),
                  whiteouts: Whiteouts | None = None) -> None:
    """Raise UsageError naming the first unsafe member; see the module docstring for the rules.
    With `whiteouts` (a layer's), they are checked first and what they hide is gone from the tree."""
    tree = _Tree(dest)
    for parts in (whiteouts.opaque + whiteouts.hidden) if whiteouts else []:
        where = "/".join(parts) or "."
        if len(parts) > limits.max_depth:
            raise _unsafe(where, f"a whiteout deeper than {limits.max_depth} (max_tar_depth in the configuration)")
        tree.walk_parents(parts, where)
    for parts in whiteouts.opaque if whiteouts else []:
        if tree.get(parts) is not None and tree.get(parts).kind != "dir":  # type: ignore[union-attr]
            raise _unsafe("/".join(parts) + "/" + OPAQUE, "an opaque marker in something that is not a directory")
        tree.opaque.add(parts)
    for parts in whiteouts.hidden if whiteouts else []:
        if parts:
            tree.nodes[parts] = None
            tree.fresh.add(parts)
    links: dict[Parts, str] = {}
    name_max, path_max = _pathconf(dest, "PC_NAME_MAX", 255), _pathconf(dest, "PC_PATH_MAX", 1024)
    if len(members) > limits.max_members:
        raise UsageError(f"the tarball has more than {limits.max_members} members (max_tar_members in the"
                         " configuration)")
    for m in members:
        parts = _parts(m.name, m.name)
        if len(parts) > limits.max_depth:
            raise _unsafe(m.name, f"{len(parts)} directories deep, more than {limits.max_depth} (max_tar_depth"
                                  " in the configuration)")
        if any(len(os.fsencode(p)) > name_max for p in parts):
            raise _unsafe(m.name, f"a component is longer than {name_max} bytes")
        if len(os.fsencode(os.path.join(dest, *parts))) >= path_max:
            raise _unsafe(m.name, f"its path in {dest} would be longer than {path_max} bytes")
        if len(os.fsencode(m.linkname)) >= path_max:
            raise _unsafe(m.name, f"its link target is longer than {path_max} bytes")
        if m.ischr() or m.isblk():
            raise _unsafe(m.name, "device nodes are not allowed")
        if m.isfifo():
            raise _unsafe(m.name, "fifos are not allowed")
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            raise _unsafe(m.name, "unsupported member type")
        if not parts and not m.isdir():
            raise _unsafe(m.name, "the destination itself can only be a directory")
        if (m.issym() or m.islnk()) and not m.linkname:
            raise _unsafe(m.name, "a link to an empty name")
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
            raise _unsafe(name, f"symlink target {short(node.target)} escapes the destination")
        if whiteouts is not None and tree.loop:
            raise _unsafe(name, "a symlink loop")


def _pathconf(path: str, name: str, default: int) -> int:
    try:
        return os.pathconf(path, name)
    except (OSError, ValueError):
        return default


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    raise AssertionError


class _Space:
    """The destination's free space: enough for the whole tree (`copies` times) before the first
    write, and never below the margin while writing."""

    def __init__(self, dest: str) -> None:
        self.dest = dest
        st = os.statvfs(dest)
        self.block = st.f_frsize or 512
        self.margin = min(_MARGIN, st.f_blocks * self.block // 20)
        self.unchecked = 0

    def reserve(self, archive: str, members: list[tarfile.TarInfo], copies: int) -> None:
        st = os.statvfs(self.dest)
        blocks = sum(-(-m.size // self.block) for m in members if m.isreg()) + sum(m.isdir() for m in members)
        need = copies * blocks * self.block
        free = st.f_bavail * self.block
        twice = f" ({copies} copies)" if copies > 1 else ""
        if need > free - self.margin:
            raise HostError(f"not enough free space in {self.dest} for {shown(archive)}: it needs"
                            f" {_human(need)}{twice}, {_human(free)} is free and {_human(self.margin)} is kept free")
        if st.f_files and copies * len(members) > st.f_favail:
            raise HostError(f"not enough free inodes in {self.dest} for {shown(archive)}: it needs"
                            f" {copies * len(members)}{twice}, {st.f_favail} are free")

    def wrote(self, size: int, archive: str) -> None:
        self.unchecked += size
        if self.unchecked < _CHECK_EVERY:
            return
        self.unchecked = 0
        st = os.statvfs(self.dest)
        if st.f_bavail * self.block < self.margin:
            raise HostError(f"the file system of {self.dest} is nearly full (under {_human(self.margin)} free):"
                            f" stopped extracting {shown(archive)}")


def extract(archive: str, dest: str, limits: Limits = Limits()) -> None:
    """Check every member of `archive` (any compression tarfile reads), then extract into `dest`."""
    with _open(archive) as tar:
        members = _members(tar, archive, limits)
        check_members(members, dest, limits)
        space = _Space(dest)
        space.reserve(archive, members, limits.copies)
        _extract_members(tar, archive, members, dest, space)


Unflag = Callable[[list[str], bool], None]


def extract_layer(archive: str, dest: str, limits: Limits, mode: str, lowers: tuple[str, ...] = (),
                  unflag: Unflag | None = None) -> None:
    """Check and unpack one image layer (a plain tar) into `dest`, its whiteouts applied.

    `mode` is 'full' (dest holds the whole tree of the layers below: what a whiteout hides is
    deleted there) or 'overlay' (dest is the layer's empty overlayfs upper directory over
    `lowers`, top first: whiteouts become overlayfs's, and a parent directory the layer does not
    list takes its attributes from the lowers, as the merged tree would show it).

    `unflag(paths, tree)` (FreeBSD, 'full') is called before anything changes with what the layer
    will remove (`tree`: each whiteout's path, each opaque directory, with all under them) and
    then with the existing paths its members replace or re-attribute: a system-immutable (schg)
    file there could be neither unlinked nor changed, even by root."""
    from ladle.plan.rmtree import remove_tree
    with _open(archive) as tar:
        members, wh = split_whiteouts(_members(tar, archive, limits))
        check_members(members, dest, limits, wh)
        space = _Space(dest)
        space.reserve(archive, members, limits.copies)
        if unflag is not None and mode == "full":
            _unflag(dest, members, wh, unflag)
        try:
            if mode == "full":
                for parts in wh.opaque:
                    top = os.path.join(dest, *parts)
                    if os.path.isdir(top) and not os.path.islink(top):
                        for child in os.listdir(top):
                            remove_tree(os.path.join(top, child))
                for parts in wh.hidden:
                    remove_tree(os.path.join(dest, *parts))
        except OSError as e:
            raise HostError(f"cannot apply the whiteouts of {shown(archive)} in {dest}: {e.strerror}") from None
        _extract_members(tar, archive, members, dest, space, lowers if mode == "overlay" else ())
        if mode == "overlay":
            _overlay_whiteouts(dest, wh, {_parts(m.name, m.name) for m in members}, lowers)


def _unflag(dest: str, members: list[tarfile.TarInfo], wh: Whiteouts, unflag: Unflag) -> None:
    """Hand `unflag` the existing paths the layer removes (trees), then those it replaces (each
    once, in the layer's order); the checks have made sure none of them is below a symlink."""
    gone = [os.path.join(dest, *p) for p in [*wh.opaque, *(h for h in wh.hidden if h)]]
    gone = [p for p in dict.fromkeys(gone) if os.path.lexists(p)]
    if gone:
        unflag(gone, True)
    replaced = [os.path.join(dest, *_parts(m.name, m.name)) for m in members]
    hidden = {os.path.join(dest, *p) for p in wh.hidden}
    replaced = [p for p in dict.fromkeys(replaced) if p not in hidden and os.path.lexists(p)]
    if replaced:
        unflag(replaced, False)


def _overlay_whiteouts(dest: str, wh: Whiteouts, listed: set[Parts], lowers: tuple[str, ...]) -> None:
    """overlayfs's form of a layer's deletions in its upper directory (a whiteout of a path
    the layer adds again is dropped: whiteouts never hide their own layer's files)."""
    try:
        for parts in wh.opaque:
            _make_parents(dest, parts, lowers)
            os.setxattr(os.path.join(dest, *parts), "trusted.overlay.opaque", b"y", follow_symlinks=False)
        for parts in wh.hidden:
            if parts and parts not in listed:
                _make_parents(dest, parts[:-1], lowers)
                os.mknod(os.path.join(dest, *parts), stat.S_IFCHR | 0o600, os.makedev(0, 0))
    except OSError as e:
        raise HostError(f"cannot write an overlay whiteout in {dest}: {e.strerror}") from None


def _open(archive: str) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except FileNotFoundError:
        raise UsageError(f"{shown(archive)}: no such file") from None
    except tarfile.ReadError:
        raise UsageError(_not_a_tar(archive)) from None
    except OSError as e:
        raise UsageError(f"cannot read {shown(archive)}: {e.strerror}") from None


def _not_a_tar(archive: str) -> str:
    """Why tarfile could not open `archive`, in one line (its own message has one per method)."""
    try:
        with open(archive, "rb") as f:
            head = f.read(6)
    except OSError as e:
        return f"cannot read {shown(archive)}: {e.strerror}"
    if not head:
        return f"{shown(archive)} is empty, not a tar archive"
    kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)
    if kind:
        return f"{shown(archive)}: truncated or corrupt {kind} data, not a readable tar archive"
    return f"{shown(archive)} is not a tar archive (plain, or compressed with gzip, bzip2 or xz)"


def _damaged(archive: str, e: BaseException) -> UsageError:
    if isinstance(e, EOFError) or "unexpected end of data" in str(e) or "truncated" in str(e):
        return UsageError(f"{shown(archive)} is truncated: it ends in the middle of a member")
    return UsageError(f"{shown(archive)} is corrupt: {str(e).splitlines()[0] if str(e) else type(e).__name__}")


def _members(tar: tarfile.TarFile, archive: str, limits: Limits) -> list[tarfile.TarInfo]:
    """Every member's header, up to one more than the cap (reading more would only cost memory);
    the size cap is applied as the headers come, before the data of a bomb is decompressed to
    reach the next one. An archive cut short is refused here, before any write."""
    members: list[tarfile.TarInfo] = []
    total = 0
    try:
        for m in tar:
            if (m.ischr() or m.isblk()) and _parts(m.name, m.name)[:1] == ("dev",):
                continue
            members.append(m)
            total += m.size if m.isreg() else 0
            if total > limits.max_size:
                raise UsageError(f"{shown(archive)} unpacks to more than max_unpacked_size ({_human(limits.max_size)}"
                                 " in the configuration)")
            if len(members) > limits.max_members:
                break
    except _READ_ERRORS as e:
        raise _damaged(archive, e) from None
    if isinstance(tar.fileobj, io.BufferedReader):  # uncompressed: the stream's length is the file's
        end = max((m.offset_data + m.size for m in members if m.isreg()), default=0)
        if end > os.fstat(tar.fileobj.fileno()).st_size:
            raise _damaged(archive, EOFError())
    return members


def _extract_members(tar: tarfile.TarFile, archive: str, members: list[tarfile.TarInfo], dest: str,
                     space: _Space, lowers: tuple[str, ...] = ()) -> None:
    """Write the checked members (the archive is read a second time)."""
    as_root = os.geteuid() == 0
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    for m in members:
        parts = _parts(m.name, m.name)
        path = os.path.join(dest, *parts)
        try:
            _make_parents(dest, parts[:-1], lowers)
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
                _write(tar, archive, m, path, as_root, space)
            elif m.issym():
                os.symlink(m.linkname, path)
                if as_root:
                    os.lchown(path, m.uid, m.gid)
                if os.utime in os.supports_follow_symlinks:
                    os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
            else:
                os.link(os.path.join(dest, *_parts(m.linkname, m.name)), path, follow_symlinks=False)
        except OSError as e:
            raise HostError(f"cannot extract {short(m.name, 80)} into {dest}: {e.strerror}") from None
    for path, m in reversed(dirs):  # deepest last-listed first, so parents' mtimes stick
        if as_root:
            os.chown(path, m.uid, m.gid)
        os.chmod(path, m.mode & 0o7777)
        os.utime(path, (m.mtime, m.mtime))


def _make_parents(dest: str, parts: Parts, lowers: tuple[str, ...] = ()) -> None:
    """Missing parents, as 0755 directories or (over `lowers`) as the first lower shows them."""
    path = dest
    for i, p in enumerate(parts):
        path = os.path.join(path, p)
        if os.path.islink(path):  # checked already; a second look costs nothing
            raise HostError(f"refusing to extract through the symlink {path}")
        if not os.path.lexists(path):
            os.mkdir(path, 0o755)
            _like_lower(path, parts[:i + 1], lowers)


def _like_lower(path: str, parts: Parts, lowers: tuple[str, ...]) -> None:
    """Give a directory made in an upper layer the owner, mode and mtime the lowers show."""
    for lower in lowers:
        if any(os.path.islink(os.path.join(lower, *parts[:j])) for j in range(1, len(parts))):
            continue  # never followed: the lower's own tree decides, as seen from inside
        try:
            st = os.lstat(os.path.join(lower, *parts))
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if os.geteuid() == 0:
                os.chown(path, st.st_uid, st.st_gid)
            os.chmod(path, stat.S_IMODE(st.st_mode))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        return


def _write(tar: tarfile.TarFile, archive: str, m: tarfile.TarInfo, path: str, as_root: bool,
           space: _Space) -> None:
    try:
        src = tar.extractfile(m)
    except _READ_ERRORS as e:
        raise _damaged(archive, e) from None
    if src is None:
        raise HostError(f"cannot read tar member {short(m.name, 80)}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with src, os.fdopen(fd, "wb") as out:
        while True:
            try:
                chunk = src.read(_CHUNK)
            except _READ_ERRORS as e:
                raise _damaged(archive, e) from None
            if not chunk:
                break
            out.write(chunk)
            space.wrote(len(chunk), archive)
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
    max_size: int = Limits.max_size
    max_members: int = Limits.max_members
    max_depth: int = Limits.max_depth
    copies: int = 1

    def render(self) -> list[str]:
        return [shlex.join(["tar", "-x", "-p", "-f", self.archive, "-C", self.dest])]

    def apply(self, ctx: Context) -> None:
        extract(self.archive, self.dest, Limits(self.max_size, self.max_members, self.max_depth, self.copies))

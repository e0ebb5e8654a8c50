"""The build context: COPY's and ADD's sources, confined to the context directory, staged into a
private directory without following any link, and hashed (names, types, modes, contents) for
the step's cache key; and FROM scratch's tree, never made through a link a source put there."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from typing import Any

from ladle import names
from ladle.errors import UsageError
from ladle.images import containerfile as cf


def copy_from(ins: cf.Instruction, env: Mapping[str, str], at: str) -> str | None:
    """COPY's `--from=STAGE|INDEX|IMAGE`, expanded; None for the build context."""
    opts, _ = cf.flags(ins, ("from",) if ins.kind == "COPY" else (), at)
    if "from" not in opts:
        return None
    found = cf.words(opts["from"], env, at)
    if len(found) != 1 or not found[0]:
        raise UsageError(f"{at}: COPY --from takes a stage name, a stage's number or an image")
    return found[0]


def sources(ins: cf.Instruction, env: Mapping[str, str], at: str) -> tuple[list[str], str]:
    _, rest = cf.flags(ins, ("from",) if ins.kind == "COPY" else (), at)
    found = cf.exec_form(rest) or cf.words(rest, env, at)
    if len(found) < 2:
        raise UsageError(f"{at}: {ins.kind} needs SOURCE... DEST")
    for s in found[:-1]:
        if "://" in s:
            raise UsageError(f"{at}: {ins.kind} of a URL is not supported: local files of the context only")
    return found[:-1], found[-1]


def in_stage(src: str, what: str, at: str) -> str:
    """A COPY --from source as an absolute path in the stage's tree; one whose `..` climbs
    above its root is refused (the tree's own links are resolved inside it by copy-out)."""
    depth = 0
    for part in src.split("/"):
        depth += -1 if part == ".." else part not in ("", ".")
        if depth < 0:
            raise UsageError(f"{at}: source {names.shown(src)} is outside the root of {what}")
    path = os.path.normpath("/" + src.lstrip("/"))
    if path == "/":
        raise UsageError(f"{at}: COPY --from of a whole root ({names.shown(src)}) is not supported: name what to copy")
    return path


def inside(ctx: str, src: str, at: str) -> str:
    """The source's path, which must resolve inside the context (its links followed there)."""
    path = os.path.realpath(os.path.join(ctx, src.lstrip("/")))
    if os.path.commonpath([ctx, path]) != ctx:
        raise UsageError(f"{at}: source {names.shown(src)} is outside the build context")
    if not os.path.lexists(path):
        raise UsageError(f"{at}: source {names.shown(src)} does not exist in the build context")
    return path


def stage(ins: cf.Instruction, env: Mapping[str, str], at: str, ctx: str, staged: str) -> str:
    """Copy the sources into `staged/N/` without following any link, owned by root; the hash of
    their names, types, modes and contents."""
    srcs, _ = sources(ins, env, at)
    h = hashlib.sha256()
    for n, s in enumerate(srcs):
        path = inside(ctx, s, at)
        top = os.path.join(staged, str(n))
        os.mkdir(top)
        name = os.path.basename(path) or "root"
        if ins.kind == "ADD" and os.path.isfile(path) and _archive(path):
            raise UsageError(f"{at}: ADD of an archive ({names.shown(s)}) is not unpacked by ladle: COPY it and"
                             " RUN tar")
        _copy(path, os.path.join(top, name), h, name)
    return h.hexdigest()


def _archive(path: str) -> bool:
    import tarfile
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _copy(src: str, dst: str, h: Any, rel: str) -> None:
    st = os.lstat(src)
    h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(src)
        h.update(target.encode() + b"\0")
        os.symlink(target, dst)
    elif stat.S_ISDIR(st.st_mode):
        os.mkdir(dst)
        for name in sorted(os.listdir(src)):
            _copy(os.path.join(src, name), os.path.join(dst, name), h, f"{rel}/{name}")
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    elif stat.S_ISREG(st.st_mode):
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f, open(dst, "xb") as out:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    # FIFOs, sockets and device nodes of the context are not copied (nor hashed)


def tree_dir(tree: str, rel: str, at: str) -> str:
    """mkdir -p of `rel` in the new tree, never through a link an earlier source put there."""
    cur = tree
    for part in [p for p in rel.split("/") if p]:
        cur = os.path.join(cur, part)
        if os.path.islink(cur) or (os.path.lexists(cur) and not os.path.isdir(cur)):
            raise UsageError(f"{at}: the destination passes through {names.shown('/' + os.path.relpath(cur, tree))},"
                             " which an earlier source made a link or a file")
        if not os.path.lexists(cur):
            os.mkdir(cur, 0o755)
    return cur

"""Resolve paths inside a pot's root without ever following a symlink out of it."""

import os

from ladle.errors import UsageError

_MAX_LINKS = 40


def resolve_in_root(root: str, path: str) -> str:
    """Return the host path of `path` as the pot would see it, with `root` as '/'.

    Symlinks are followed the way the kernel would inside a chroot: absolute targets restart at
    `root`, and '..' never climbs above it. Missing trailing components are allowed (the result is
    where they would be created). The result is always `root` or below it.
    """
    root = os.path.abspath(root)  # not realpath: /proc/PID/root must stay as it is
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        if os.path.islink(candidate):
            links += 1
            if links > _MAX_LINKS:
                raise UsageError(f"too many symbolic links while resolving {path!r}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        done.append(part)
    return os.path.join(root, *done)

"""Mounts into and out of a running pot (mount-in, add-fscomp, mount-out), as pot does them at once.

After pivot_root the host's directories are not visible in a pot's mount namespace, so a bind
mount cannot be made from inside it. Instead the source is cloned on the host as a detached tree
(open_tree), made nodev and read-only if asked (mount_setattr), and moved onto the mount point inside the
pot (setns + move_mount). The mount point is resolved from the pot's root without ever following
a symlink out of it. Each step runs in a forked child, so this process never changes namespace.
"""

from __future__ import annotations

import errno
import gc
import os
import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from ladle.errors import HostError, StateError
from ladle.hosts.linux import container, mounts
from ladle.hosts.linux import syscalls as sc
from ladle.plan.steps import Context, Step

Before = Callable[[], int | None]
Inside = Callable[[int | None], None]


def run_forked(name: str, fn: Callable[[], None]) -> None:
    """Run `fn` in a forked child (which may change namespaces); raise its error here, one line."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
        if pid == 0:
            _child(fn, w)
        os.close(w)
        w = -1
        message = b""
        while chunk := os.read(r, 4096):
            message += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if message or status != 0:
        raise HostError(f"pot {name}: {message.decode(errors='replace') or 'failed'}")


def _child(fn: Callable[[], None], w: int) -> NoReturn:
    code = 1
    gc.disable()
    try:
        fn()
        code = 0
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        os.write(w, f"{where.strip() or 'mount'}: {e.strerror}".encode())
    except BaseException as e:
        os.write(w, f"{type(e).__name__}: {e}".encode())
    os._exit(code)


def _in_pot(init_pid: int, init_start: int | None, name: str, before: Before, inside: Inside) -> None:
    """In a forked child, run `before()` on the host, then join the pot's mount namespace and root
    and run `inside(what before returned)`; raise the child's error here."""
    entry = container.open_entry(init_pid, init_start, names=("mnt",))
    if entry is None:
        raise StateError(f"pot {name} is not running")

    def child() -> None:
        held = before()
        container.join(entry)
        inside(held)

    try:
        run_forked(name, child)
    finally:
        entry.close()


@dataclass
class LinuxLiveMount(Step):
    """Bind `source` at `target` inside the running pot whose pid 1 is `init_pid`."""

    name: str
    init_pid: int
    init_start: int | None
    source: str
    target: str
    readonly: bool = False

    def render(self) -> list[str]:
        ns = ["nsenter", "--target", str(self.init_pid), "--mount", "--"]
        opts = ["-o", "bind,ro,nodev" if self.readonly else "bind,nodev"]
        return ["# into the running pot, through a detached mount tree (open_tree, move_mount):",
                shlex.join([*ns, "mount", *opts, self.source, self.target])]

    def apply(self, ctx: Context) -> None:
        def clone() -> int:
            tree = sc.open_tree(self.source, sc.OPEN_TREE_CLONE | sc.AT_RECURSIVE)
            sc.set_mount_attrs(tree, sc.MOUNT_ATTR_NODEV | (sc.MOUNT_ATTR_RDONLY if self.readonly else 0))
            return tree

        def attach(tree: int | None) -> None:
            root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            assert tree is not None
            target = mounts.mount_point(root, self.target)
            if not stat.S_ISDIR(os.fstat(target).st_mode):  # move_mount would say only EINVAL
                raise NotADirectoryError(errno.ENOTDIR, "not a directory in the pot", self.target)
            sc.move_mount(tree, target)

        _in_pot(self.init_pid, self.init_start, self.name, clone, attach)

    def inverse(self) -> list[Step]:
        return [LinuxLiveUnmount(self.name, self.init_pid, self.init_start, self.target)]


@dataclass
class LinuxLiveUnmount(Step):
    """Detach whatever is mounted at `target` inside the running pot."""

    name: str
    init_pid: int
    init_start: int | None
    target: str

    def render(self) -> list[str]:
        return [shlex.join(["nsenter", "--target", str(self.init_pid), "--mount", "--", "umount", "-l",
                            self.target])]

    def apply(self, ctx: Context) -> None:
        _in_pot(self.init_pid, self.init_start, self.name, lambda: None,
                lambda _: sc.umount2(self.target, sc.MNT_DETACH))

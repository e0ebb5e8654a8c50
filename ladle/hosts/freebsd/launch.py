"""How the monitor starts a pot's processes on FreeBSD: `jexec` into the jail the start plan made.

The jail itself is the pot's sandbox (made with `persist` by `jail -c`), so there is no pid 1 to
create: the main process and every `exec` are `jexec` commands, forked by the monitor with the
pot's output FIFOs (or the caller's terminal) as their standard descriptors. jexec attaches to the
jail and execs the command, so the pid the monitor waits for is the command's, and its exit
status is the command's.
"""

from __future__ import annotations

import fcntl
import os
import pwd  # here, not in the forked child (no import there)
import termios
from typing import Any

from ladle import platform
from ladle.supervise.launcher import Launcher, Sandbox
from ladle.supervise.spawn import DEFAULT_PATH, Child, fork_child


class FreeBSDLauncher(Launcher):
    name = "freebsd"

    def spawn(self, pot: str, sandbox: Sandbox | None, request: dict[str, Any], stdio: list[int],
              tty: bool) -> Child:
        # jexec runs with the monitor's environment; none of it reaches the jail: the main
        # command is `env -i ...`, and exec is `jexec -l`, which starts from a clean one.
        env = dict(os.environ)
        env.setdefault("PATH", DEFAULT_PATH)

        creds = request.get("creds") or {}
        if creds:  # a numeric image user: what jexec -U would do, for a uid (hosts/freebsd/plans.image_ids)
            attach = platform.current.jail_attacher(pot)  # the jail looked up here, before the fork
            env = dict(creds["env"])

        def prepare() -> None:
            if tty:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            if creds:
                attach()
                _become(creds["uid"], creds["gid"], creds["workdir"])

        return fork_child(list(request["argv"]), env, stdio, prepare)


def _become(uid: int, gid: int | None, workdir: str) -> None:
    """In the child, attached to the jail: its working directory, then its groups and ids. The
    passwd looked at is the jail's (we are in it), as jexec -U's lookup after it attaches."""
    os.chdir(workdir)
    if gid is None:
        try:
            entry = pwd.getpwuid(uid)
            gid, groups = entry.pw_gid, os.getgrouplist(entry.pw_name, entry.pw_gid)
        except KeyError:
            gid, groups = 0, [0]
    else:
        groups = [gid]
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)

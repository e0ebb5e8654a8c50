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
import termios
from typing import Any

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

        def prepare() -> None:
            if tty:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        return fork_child(list(request["argv"]), env, stdio, prepare)

"""What the monitor asks of a host: how to start a pot's processes. Implemented by
`ladle.hosts.linux.launch` (namespaces, a waiting pid 1, catatonit) and
`ladle.hosts.freebsd.launch` (`jexec` into a jail that the start plan made)."""

from __future__ import annotations

from typing import Any

from ladle.errors import UsageError
from ladle.supervise.spawn import Child


class Sandbox:
    """A pot's pid 1 on a host that has one (Linux): its pid, start time and control pipe."""

    def __init__(self, pid: int, start: int | None, control: int = -1) -> None:
        self.pid = pid
        self.start = start
        self.control = control


class Launcher:
    name = ""

    def prepare_monitor(self) -> None:
        """Called once in the monitor before it serves (make it non-dumpable, load the init...)."""

    def sandbox(self, pot: str, request: dict[str, Any]) -> tuple[Sandbox, Child]:
        """Create the pot's namespaces around a pid 1 that waits; the child reports `K` once they
        exist, then (after `enter`) EOF when it has exec'd the init, or why not."""
        raise UsageError(f"the {self.name} launcher has no sandboxes")

    def place(self, sandbox: Sandbox, request: dict[str, Any]) -> None:
        """Put the waiting pid 1 where the pot's processes are tracked (the `cgroup` asked for),
        before anything of the pot runs."""

    def net(self, sandbox: Sandbox | None, request: dict[str, Any]) -> dict[str, Any]:
        """Set up (`action` up, the pot's `sandbox` waiting) or remove (down) a pot's network."""
        raise UsageError(f"the {self.name} launcher has no network steps")

    def enter(self, sandbox: Sandbox, request: dict[str, Any]) -> None:
        """Let the waiting pid 1 go on: build the pot's root, enter it, exec the init."""
        raise UsageError(f"the {self.name} launcher has no sandboxes")

    def spawn(self, pot: str, sandbox: Sandbox | None, request: dict[str, Any], stdio: list[int],
              tty: bool) -> Child:
        """Fork the pot's main process, or a command run in it (exec), with `stdio`."""
        raise NotImplementedError

    def kill_sandbox(self, sandbox: Sandbox) -> None:
        """End the pot at once (SIGKILL to its pid 1: the kernel kills all that is left)."""

"""Host-side work inside a running pot's network namespace, done from a short-lived thread.

setns(CLONE_NEWNET) changes the namespace of the calling thread only, so a thread can join the
pot's network namespace, make what it needs there (a socket, an interface change) and end, while
the rest of the process stays on the host; no fork, which costs more than the work itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ladle.errors import HostError, StateError
from ladle.hosts.linux import container
from ladle.hosts.linux import syscalls as sc


def run_in(init_pid: int, init_start: int | None, pot: str, fn: Callable[[], None]) -> None:
    """Run `fn` in the network namespace of the pot whose pid 1 is `init_pid`."""
    entry = container.open_entry(init_pid, init_start, names=("net",))
    if entry is None:
        raise StateError(f"pot {pot} is not running")
    failed: list[BaseException] = []

    def inside() -> None:
        try:
            if "net" in entry.ns:
                sc.setns(entry.ns["net"], sc.CLONE_NEWNET)
            fn()
        except BaseException as e:
            failed.append(e)

    try:
        thread = threading.Thread(target=inside, name=f"ladle-netns-{pot}")
        thread.start()
        thread.join()
    finally:
        entry.close()
    if failed:
        e = failed[0]
        what = f"{e.strerror}" if isinstance(e, OSError) and e.strerror else str(e)
        raise HostError(f"pot {pot}: {what}")


def link_up(interface: str) -> None:
    sc.interface_up(interface)

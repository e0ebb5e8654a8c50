"""What the monitor keeps in memory about connections, processes and pots. What must outlive a
monitor is elsewhere: in the `runs` table, in the pots' FIFOs and with the keeper."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from ladle.supervise.launcher import Sandbox


class Refusal(Exception):
    """A request the monitor will not do; `kind` picks the client's exception (usage, state, host)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def exit_code(status: int | None) -> int | None:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    if status is None:
        return None
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 255


@dataclass(eq=False)
class Conn:
    """A command's connection."""

    sock: socket.socket
    owns: set[str] = field(default_factory=set)  # pots whose sandbox dies with this connection


@dataclass
class Sink:
    """An attached client's pipe for one stream; written without ever blocking the monitor."""

    fd: int
    buf: bytearray = field(default_factory=bytearray)
    closing: bool = False


@dataclass
class Proc:
    """A process of a pot the monitor waits for."""

    pid: int
    start: int | None
    pot: str
    role: str  # pid1 | main | exec | teardown | spare (a waiting pid 1 for the next start) | health | restart
    ours: bool  # our child (waitpid gives its status) or adopted (the keeper records it)
    conn: Conn | None = None  # who waits for an exec's exit
    rid: Any = None
    reporting: bool = False  # its report pipe is not read yet: an exit waits for it
    status: tuple[int | None] | None = None  # an exit that came before the report
    bound: bool = False  # an exec killed when `conn` goes (a healthcheck)


def destroys(on_exit: list[str] | None) -> bool:
    """Whether a pot's teardown command (Host.on_exit) is the `destroy` of a `run --rm -d` pot,
    not a `stop`."""
    return "destroy" in (on_exit or [])


@dataclass(eq=False)
class PotState:
    """A pot the monitor owns, from its sandbox (or first process) until everything of it is gone."""

    name: str
    sandbox: Sandbox | None = None
    report: int = -1  # a waiting pid 1's report pipe, until `enter`
    owner: Conn | None = None  # until its command runs, the start that made it
    main: Proc | None = None
    persistent: bool = True
    on_exit: list[str] | None = None
    fifos: dict[int, int] = field(default_factory=dict)  # FIFO read end -> 1 (stdout) or 2 (stderr)
    log: int = -1
    sinks: dict[int, Sink] = field(default_factory=dict)  # 1/2 -> an attached client's pipe
    waiters: list[tuple[Conn, Any, bool]] = field(default_factory=list)  # told when the command ends
    # (as an event for an attached `run`, as the answer to a `wait`)
    stoppers: list[tuple[Conn, Any]] = field(default_factory=list)  # answered when the pot is gone
    attached: Conn | None = None  # an attached `run`, which tears the pot down itself
    stopping: bool = False
    tearing: bool = False
    signalled: bool = False
    main_done: bool = False
    exit_code: int | None = None
    error: str | None = None
    # its restart policy and healthcheck (`supervise.life`), as the runs table has them too
    restart: str = "no"
    restart_unhealthy: bool = False
    restarts: int = 0
    streak: int = 0
    started_at: float = 0.0
    restart_at: float | None = None  # decided: it starts again then
    check: dict[str, Any] | None = None  # interval, timeout, retries, start_period (seconds), cmd
    health: str | None = None
    health_fails: int = 0

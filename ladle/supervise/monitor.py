"""The monitor: one process per host that owns every running pot's processes.

It starts each pot's processes through the host's `Launcher`, copies their output into the pot's
log, records how each run ends in the `runs` table, forwards signals, and tears down a
non-persistent pot when its command exits (by running `ladle stop` for it). One single-threaded
event loop serves every pot and every command, so a running pot costs a few file descriptors and
a few hundred bytes here, not a process.

Nothing about a pot lives only in this process:
- the main process writes into two FIFOs (`run/<pot>/out.fifo`, `err.fifo`) that it holds open
  for reading and writing itself, so the pipes outlive a monitor, never raise SIGPIPE, and a new
  monitor reopens them and finds every byte the pot wrote meanwhile;
- the keeper (our parent) is the reaper of our descendants, so when we die the pots' processes
  become its children and it records their exit statuses (`run/exits/`, and tells us), and it
  holds a descriptor of each FIFO so that what a pot writes while no monitor runs is kept;
- the `runs` table says which processes belong to which pot; a new monitor adopts them from it.

Killing the monitor therefore stops nothing: the keeper starts another at once, which adopts
every pot it finds alive. The monitor exits by itself when it has had nothing to do for a while.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import heapq
import itertools
import json
import os
import selectors
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ladle import platform
from ladle.errors import LadleError, StateError, UsageError
from ladle.state.store import Store
from ladle.supervise import protocol
from ladle.supervise.keeper import exits_dir
from ladle.supervise.launcher import Launcher, Sandbox
from ladle.supervise.spawn import fork_child

STOPPED_BY_SIGNAL = 3        # exit code when asked to stop: the keeper starts another monitor
SINK_LIMIT = 4 << 20         # bytes buffered for a slow attached client before it is dropped
STATUS_WAIT = 5.0            # seconds to wait for the keeper's record of an adopted process
PIPE_SIZE = 1 << 20          # FIFO capacity while no monitor reads (F_SETPIPE_SZ, Linux)


def exit_code(status: int | None) -> int | None:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    if status is None:
        return None
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 255


class Refusal(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Conn:
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
    pid: int
    start: int | None
    pot: str
    role: str  # pid1 | main | exec | teardown
    ours: bool  # our child (waitpid gives its status) or adopted (the keeper records it)
    conn: Conn | None = None
    rid: Any = None


@dataclass
class PotState:
    name: str
    sandbox: Sandbox | None = None
    report: int = -1  # a waiting pid 1's report pipe, until `enter`
    owner: Conn | None = None
    main: Proc | None = None
    persistent: bool = True
    on_exit: list[str] | None = None
    fifos: dict[int, int] = field(default_factory=dict)  # FIFO read end -> 1 (stdout) or 2 (stderr)
    log: int = -1
    sinks: dict[int, Sink] = field(default_factory=dict)  # 1/2 -> sink
    waiters: list[tuple[Conn, Any]] = field(default_factory=list)
    stoppers: list[tuple[Conn, Any]] = field(default_factory=list)
    attached: Conn | None = None  # an attached `run` that tears the pot down itself
    stopping: bool = False
    tearing: bool = False
    signalled: bool = False
    main_done: bool = False
    exit_code: int | None = None
    error: str | None = None


class Monitor:
    def __init__(self, root: str, launcher: Launcher, listener: socket.socket, keeper: socket.socket | None,
                 idle: float) -> None:
        self.root = root
        self.launcher = launcher
        self.listener = listener
        self.idle = idle
        self.sel = selectors.DefaultSelector()
        self.watch = platform.current.exit_watcher()
        self.store = Store(os.path.join(root, "ladle.db"))
        self.pots: dict[str, PotState] = {}
        self.procs: dict[int, Proc] = {}
        self.statuses: dict[tuple[int, int | None], int] = {}  # from the keeper
        self.awaiting: dict[int, float] = {}  # adopted pids that exited, waiting for their status
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.me = os.getpid()
        self.my_start = platform.start_time(self.me)
        self.keeper = keeper
        self.quiet_since = time.monotonic()
        self.conns: set[int] = set()
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, self._accept)
        self.sel.register(self.watch.fileno(), selectors.EVENT_READ, self._exits)
        if keeper is not None:
            self.sel.register(keeper, selectors.EVENT_READ, self._from_keeper)

    # The loop ------------------------------------------------------------------------------------

    def serve(self) -> int:
        self.adopt()
        while True:
            timeout = self._timeout()
            for key, mask in self.sel.select(timeout):
                key.data(key.fileobj, mask)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, fn = heapq.heappop(self.timers)
                fn()
            if self._idle() and now - self.quiet_since >= self.idle:
                return 0

    def _idle(self) -> bool:
        busy = bool(self.pots or self.procs or self.conns)
        if busy:
            self.quiet_since = time.monotonic()
        return not busy

    def _timeout(self) -> float | None:
        deadline = self.timers[0][0] if self.timers else None
        if self._idle():
            end = self.quiet_since + self.idle
            deadline = end if deadline is None else min(deadline, end)
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self.seq), fn))

    # Connections and requests ------------------------------------------------------------------

    def _accept(self, sock: Any, mask: int) -> None:
        try:
            conn_sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn = Conn(conn_sock)
        self.conns.add(conn_sock.fileno())
        self.sel.register(conn_sock, selectors.EVENT_READ, lambda s, m: self._readable(conn))

    def _readable(self, conn: Conn) -> None:
        try:
            message, fds = protocol.receive(conn.sock)
        except OSError:
            message, fds = None, []
        if message is None:
            self._hang_up(conn)
            return
        rid = message.get("id")
        try:
            handler = getattr(self, f"op_{str(message.get('op', '')).replace('-', '_')}", None)
            if handler is None:
                raise Refusal("usage", f"unknown monitor request {message.get('op')!r}")
            reply = handler(conn, rid, message, fds)
            fds = []  # the handler owns them now
        except Refusal as e:
            reply = {"error": str(e), "kind": e.kind}
        except LadleError as e:
            reply = {"error": str(e), "kind": "usage" if isinstance(e, UsageError) else
                     "state" if isinstance(e, StateError) else "host"}
        except OSError as e:
            reply = {"error": f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}", "kind": "host"}
        finally:
            for fd in fds:
                os.close(fd)
        if reply is not None:
            self.reply(conn, rid, reply)

    def reply(self, conn: Conn, rid: Any, body: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            protocol.send(conn.sock, {"id": rid, **body})

    def _hang_up(self, conn: Conn) -> None:
        self.conns.discard(conn.sock.fileno())
        self.sel.unregister(conn.sock)
        conn.sock.close()
        for name in list(conn.owns):  # a command that died half-way through a start
            pot = self.pots.get(name)
            if pot is not None and pot.owner is conn:
                self._discard(pot)
        for pot in list(self.pots.values()):
            pot.waiters = [(c, r) for c, r in pot.waiters if c is not conn]
            pot.stoppers = [(c, r) for c, r in pot.stoppers if c is not conn]
            if pot.attached is conn:  # the `run` that was to tear it down went away
                pot.attached = None
                for stream in list(pot.sinks):
                    self._drop_sink(pot, stream)
                if pot.main_done and not pot.persistent and not pot.stopping:
                    self._teardown(pot)
        for proc in self.procs.values():
            if proc.conn is conn:
                proc.conn = None

    def _pot(self, message: dict[str, Any]) -> PotState:
        name = str(message.get("pot", ""))
        pot = self.pots.get(name)
        if pot is None:
            raise Refusal("state", f"pot {name} is not running")
        return pot

    def op_hello(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        return {"pid": self.me, "start": self.my_start, "launcher": self.launcher.name}

    def op_status(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        return {"pid": self.me, "pots": {
            p.name: {"init_pid": p.sandbox.pid if p.sandbox else None,
                     "main_pid": p.main.pid if p.main else None, "main_done": p.main_done,
                     "exit_code": p.exit_code, "stopping": p.stopping} for p in self.pots.values()}}

    def op_sandbox(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> None:
        name = str(m["pot"])
        if name in self.pots:
            raise Refusal("state", f"pot {name} is already running")
        sandbox, child = self.launcher.sandbox(name, m)
        pot = PotState(name, sandbox=sandbox, owner=conn)
        self.pots[name] = pot
        conn.owns.add(name)
        self.procs[sandbox.pid] = Proc(sandbox.pid, sandbox.start, name, "pid1", True)
        self.watch.add(sandbox.pid)

        def failed(error: str | None) -> None:
            self.reply(conn, rid, {"error": error or "its pid 1 died", "kind": "host"})
            self._discard(pot)

        def ready() -> None:
            pot.report = child.report
            self.reply(conn, rid, {"pid": sandbox.pid, "start": sandbox.start})

        self._await_report(child.report, child.pid, failed, ready, must_live=True)
        return None

    def op_enter(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> None:
        pot = self._pot(m)
        sandbox = pot.sandbox
        if sandbox is None or sandbox.control < 0 or pot.report < 0:
            raise Refusal("state", f"pot {pot.name} has no waiting pid 1")
        report, pot.report = pot.report, -1
        self.launcher.enter(sandbox, m)

        def done(error: str | None) -> None:
            if error:
                self.reply(conn, rid, {"error": error, "kind": "host"})
            else:
                self.reply(conn, rid, {"pid": sandbox.pid})

        self._await_report(report, sandbox.pid, done, must_live=True)
        return None

    def op_spawn(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> None:
        role = m.get("role")
        if role == "main":
            self._spawn_main(conn, rid, m, fds)
        elif role == "exec":
            self._spawn_exec(conn, rid, m, fds)
        else:
            raise Refusal("usage", f"unknown role {role!r}")

    def op_signal(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        sig = int(m["signal"])
        pid = m.get("pid")
        if pid is not None:
            proc = self.procs.get(int(pid))
            if proc is None or proc.pot != m.get("pot"):
                raise Refusal("state", f"process {pid} is not one of pot {m.get('pot')}'s")
        else:
            pot = self._pot(m)
            proc = pot.main if pot.main and not pot.main_done else None
            if proc is None:
                raise Refusal("state", f"the command of pot {pot.name} is not running")
        self._kill(proc, sig)
        return {}

    def op_stop(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> dict[str, Any] | None:
        """Stop a pot: SIGTERM to its command, SIGKILL to its pid 1 after `timeout` (or at once
        when the command has ended); answered when everything of it is gone."""
        pot = self.pots.get(str(m.get("pot")))
        if pot is None:
            return {"state": None}
        pot.stoppers.append((conn, rid))
        if pot.stopping:
            return None
        pot.stopping = True
        if pot.main and not pot.main_done:
            pot.signalled = True
            self._kill(pot.main, signal.SIGTERM, group=True)
            self.later(float(m.get("timeout", 10)), lambda: self._end_sandbox(pot))
        else:
            self._end_sandbox(pot)
        self._maybe_finished(pot)
        return None

    def op_notice(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        """A stop is coming from outside (`jail -r` on FreeBSD): the end will be 'stopped'."""
        pot = self.pots.get(str(m.get("pot")))
        if pot is not None:
            pot.stopping = True
            pot.signalled = pot.signalled or bool(pot.main and not pot.main_done)
        return {}

    def op_release(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> dict[str, Any] | None:
        """Answered once every process of the pot is gone and its end is recorded."""
        pot = self.pots.get(str(m.get("pot")))
        if pot is None:
            return {"state": None}
        pot.stopping = True
        pot.stoppers.append((conn, rid))
        self._maybe_finished(pot)
        return None

    def op_wait(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> dict[str, Any] | None:
        """Answered when the pot's command exits (at once if it has)."""
        pot = self.pots.get(str(m.get("pot")))
        if pot is None or pot.main_done:
            return {"exit_code": pot.exit_code if pot else None}
        pot.waiters.append((conn, rid))
        return None

    # Starting processes ------------------------------------------------------------------------

    def _await_report(self, fd: int, pid: int, done: Callable[[str | None], None],
                      ready: Callable[[], None] | None = None, must_live: bool = False) -> None:
        """Read a child's report pipe: `E reason` is a failure; EOF means it exec'd (a command may
        well have ended already; a pid 1, `must_live`, must still be there). With `ready`, a first
        `K` line means its sandbox exists: `ready()` is called and the pipe is kept in
        `PotState.report` until `enter`."""
        buf = bytearray()

        def readable(f: Any, mask: int) -> None:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            buf.extend(data)
            text = buf.decode(errors="replace")
            if ready is not None and text == "K\n":
                self.sel.unregister(fd)
                ready()
                return
            if "\n" in text.removeprefix("K\n") or not data:
                self.sel.unregister(fd)
                os.close(fd)
                error = next((ln[2:] for ln in text.splitlines() if ln.startswith("E ")), None)
                if error is None and must_live and self._exited(pid):
                    error = "it died while it was being set up"
                done(error)

        os.set_blocking(fd, False)
        self.sel.register(fd, selectors.EVENT_READ, readable)

    def _exited(self, pid: int) -> bool:
        try:
            return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def _open_fifos(self, pot: PotState, run_dir: str, split: bool) -> list[int]:
        """The FIFOs of a pot's output: read ends for us, read-write ends for the command's stdout
        and stderr. Both go into one FIFO (so the log keeps their order) unless `split` (an
        attached `run`, whose caller gets stdout and stderr apart)."""
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        ends: list[int] = []
        for n, name in ((1, "out.fifo"), (2, "err.fifo")):
            path = os.path.join(run_dir, name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            if n == 2 and not split:
                ends.append(ends[0])
                break
            os.mkfifo(path, 0o600)
            r = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            w = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            with contextlib.suppress(OSError):
                import fcntl
                fcntl.fcntl(r, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
            self._add_fifo(pot, r, n)
            ends.append(w)
        return ends

    def _add_fifo(self, pot: PotState, fd: int, stream: int) -> None:
        pot.fifos[fd] = stream
        self.sel.register(fd, selectors.EVENT_READ, lambda f, m: self._fifo(pot, fd))
        self._hold(f"{pot.name}/{stream}", fd)

    def _spawn_main(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> None:
        name = str(m["pot"])
        pot = self.pots.get(name)
        if pot is None:
            if self.launcher.name == "linux":
                raise Refusal("state", f"pot {name} has no sandbox")
            pot = PotState(name, owner=conn)
            self.pots[name] = pot
            conn.owns.add(name)
        if pot.main is not None:
            raise Refusal("state", f"pot {name} already runs its command")
        pot.persistent = bool(m.get("persistent", True))
        pot.on_exit = list(m["on_exit"]) if m.get("on_exit") else None
        log_path = str(m["log"])
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        pot.log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        writers = self._open_fifos(pot, str(m["run_dir"]), split=bool(m.get("attach")))
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        try:
            child = self.launcher.spawn(name, pot.sandbox, m, [null, *writers], tty=False)
        except BaseException:
            self._close_pot_fds(pot)
            if not pot.sandbox:
                self._forget(pot)
            raise
        finally:
            for fd in {null, *writers}:
                os.close(fd)
        if m.get("attach"):
            for stream, fd in zip((1, 2), fds, strict=False):
                os.set_blocking(fd, False)
                pot.sinks[stream] = Sink(fd)
            pot.waiters.append((conn, rid))
            pot.attached = conn
        start = platform.start_time(child.pid)
        proc = Proc(child.pid, start, name, "main", True)
        self.procs[child.pid] = proc
        self.watch.add(child.pid)

        def execd(error: str | None) -> None:
            if error:
                pot.waiters = [(c, r) for c, r in pot.waiters if r is not rid or c is not conn]
                pot.attached = None
                self._close_sinks(pot)
                self._record_failure(name, error)
                self.reply(conn, rid, {"error": error, "kind": "host"})
                self._kill(proc, signal.SIGKILL)
                return
            pot.main = proc
            pot.owner = None
            conn.owns.discard(name)
            self._record_start(pot, m)
            self.reply(conn, rid, {"pid": child.pid, "start": start})

        self._await_report(child.report, child.pid, execd)

    def _spawn_exec(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> None:
        if len(fds) != 3:
            raise Refusal("usage", "exec needs three descriptors (stdin, stdout, stderr)")
        pot = self._pot(m)
        try:
            child = self.launcher.spawn(pot.name, pot.sandbox, m, fds, tty=bool(m.get("tty")))
        finally:
            for fd in fds:
                os.close(fd)
        proc = Proc(child.pid, platform.start_time(child.pid), pot.name, "exec", True, conn, rid)
        self.procs[child.pid] = proc
        self.watch.add(child.pid)

        def execd(error: str | None) -> None:
            if error:
                proc.conn = None
                self.reply(conn, rid, {"error": error, "kind": "host"})
                self._kill(proc, signal.SIGKILL)
            else:
                self.reply(conn, rid, {"pid": child.pid})

        self._await_report(child.report, child.pid, execd)

    # Output ------------------------------------------------------------------------------------

    def _fifo(self, pot: PotState, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self._drop_fifo(pot, fd)
            return
        self._deliver(pot, pot.fifos[fd], data)

    def _deliver(self, pot: PotState, stream: int, data: bytes) -> None:
        if pot.log >= 0:
            _write_all(pot.log, data)
        sink = pot.sinks.get(stream)
        if sink is not None and not sink.closing:
            sink.buf.extend(data)
            if len(sink.buf) > SINK_LIMIT:
                self._drop_sink(pot, stream)
            else:
                self._flush(pot, stream)

    def _drain(self, pot: PotState) -> None:
        """Everything the FIFOs hold now, without waiting for more."""
        for fd, stream in list(pot.fifos.items()):
            while True:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not data:
                    self._drop_fifo(pot, fd)
                    break
                self._deliver(pot, stream, data)

    def _drop_fifo(self, pot: PotState, fd: int) -> None:
        if fd in pot.fifos:
            del pot.fifos[fd]
            self.sel.unregister(fd)
            os.close(fd)

    def _flush(self, pot: PotState, stream: int) -> None:
        sink = pot.sinks[stream]
        try:
            while sink.buf:
                n = os.write(sink.fd, sink.buf[:65536])
                del sink.buf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._drop_sink(pot, stream)
            return
        key = self.sel.get_map().get(sink.fd)
        if sink.buf and key is None:
            self.sel.register(sink.fd, selectors.EVENT_WRITE, lambda f, m: self._flush(pot, stream))
        elif not sink.buf and key is not None:
            self.sel.unregister(sink.fd)
        if not sink.buf and sink.closing:
            self._drop_sink(pot, stream)

    def _drop_sink(self, pot: PotState, stream: int) -> None:
        sink = pot.sinks.pop(stream, None)
        if sink is None:
            return
        if self.sel.get_map().get(sink.fd) is not None:
            self.sel.unregister(sink.fd)
        os.close(sink.fd)
        if not pot.sinks:
            self._send_exit_events(pot)

    def _close_sinks(self, pot: PotState) -> None:
        """Deliver what is buffered, then close: the attached client sees EOF after the output."""
        for stream in list(pot.sinks):
            pot.sinks[stream].closing = True
            self._flush(pot, stream)

    # Exits -----------------------------------------------------------------------------------------

    def _exits(self, fd: Any, mask: int) -> None:
        for pid in self.watch.exited():
            proc = self.procs.get(pid)
            if proc is None:
                continue
            status: int | None
            if proc.ours:
                try:
                    status = os.waitpid(pid, 0)[1]
                except ChildProcessError:
                    status = None
                self._ended(proc, status)
                continue
            status = self.statuses.pop((pid, proc.start), None)
            if status is not None:
                self._ended(proc, status)
            else:
                self.awaiting[pid] = time.monotonic()
                self.later(STATUS_WAIT, functools.partial(self._status_lost, proc))

    def _status_lost(self, proc: Proc) -> None:
        if self.awaiting.pop(proc.pid, None) is not None:
            self._ended(proc, None)

    def _from_keeper(self, sock: Any, mask: int) -> None:
        """The keeper tells of an orphan's exit: a process of a pot adopted from a dead monitor."""
        assert self.keeper is not None
        try:
            message, fds = protocol.receive(self.keeper)
        except OSError:
            message, fds = None, []
        for fd in fds:
            os.close(fd)
        if message is None:  # no keeper: exits of adopted processes will be reported as lost
            self.sel.unregister(self.keeper)
            self.keeper.close()
            self.keeper = None
            return
        if message.get("op") == "exit":
            self._orphan_exited(int(message["pid"]), message.get("start"), int(message["status"]))

    def _orphan_exited(self, pid: int, start: int | None, status: int) -> None:
        proc = self.procs.get(pid)
        if proc is None or proc.ours or (proc.start is not None and start is not None and proc.start != start):
            return
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(exits_dir(self.root), f"{pid}.{'-' if start is None else start}"))
        if self.awaiting.pop(pid, None) is not None:
            self._ended(proc, status)
        else:
            self.statuses[(pid, proc.start)] = status

    def _hold(self, key: str, fd: int | None) -> None:
        """Have the keeper hold (fd) or drop (None) a descriptor of a pot's FIFO."""
        if self.keeper is None:
            return
        with contextlib.suppress(OSError):
            protocol.send(self.keeper, {"op": "hold" if fd is not None else "drop", "key": key},
                          [fd] if fd is not None else [])

    def _ended(self, proc: Proc, status: int | None) -> None:
        self.procs.pop(proc.pid, None)
        code = exit_code(status)
        pot = self.pots.get(proc.pot)
        if proc.role == "exec":
            if proc.conn is not None:
                with contextlib.suppress(OSError):
                    protocol.send(proc.conn.sock, {"event": "exit", "id": proc.rid, "pid": proc.pid,
                                                   "exit_code": code})
            return
        if proc.role == "teardown":
            if code:
                print(f"ladle monitor: teardown of pot {proc.pot} ended with {code}", file=sys.stderr)
            return
        if pot is None:
            return
        if proc.role == "main":
            self._main_ended(pot, code, status is None)
        elif proc.role == "pid1":
            pot.sandbox = None
            if not pot.main_done and pot.main is None:
                self._forget(pot)  # a sandbox that never ran its command
                return
            if not pot.stopping:
                pot.error = pot.error or "its pid 1 died"
                self._teardown(pot)
        self._maybe_finished(pot)

    def _main_ended(self, pot: PotState, code: int | None, lost: bool) -> None:
        pot.main_done = True
        pot.exit_code = code
        if lost:
            pot.error = "its exit status was lost (its monitor and keeper were killed)"
        self._drain(pot)
        self._update_run(pot, exit_code=code, finished=time.time(), error=pot.error)
        self._close_sinks(pot)
        if not pot.sinks:
            self._send_exit_events(pot)
        if pot.stopping:  # the command obeyed the stop: what is left of the pot goes at once
            self._end_sandbox(pot)
        elif not pot.persistent and not pot.attached:  # an attached `run` tears it down itself
            self._teardown(pot)

    def _send_exit_events(self, pot: PotState) -> None:
        if not pot.main_done:
            return
        waiters, pot.waiters = pot.waiters, []
        for conn, rid in waiters:
            with contextlib.suppress(OSError):
                protocol.send(conn.sock, {"event": "exit", "id": rid, "pot": pot.name, "exit_code": pot.exit_code})

    def _teardown(self, pot: PotState) -> None:
        """Run the pot's `on_exit` command (`ladle stop POT`) as our child, once."""
        if pot.tearing:
            return
        pot.tearing = True
        if not pot.on_exit:  # nothing on the host to undo: end the pot here
            pot.stopping = True
            self._end_sandbox(pot)
            self._maybe_finished(pot)
            return
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        try:
            child = fork_child(pot.on_exit, dict(os.environ), [null, 2, 2], lambda: None)
        finally:
            os.close(null)
        os.close(child.report)
        self.procs[child.pid] = Proc(child.pid, None, pot.name, "teardown", True)
        self.watch.add(child.pid)

    def _end_sandbox(self, pot: PotState) -> None:
        if pot.sandbox is not None:
            self.launcher.kill_sandbox(pot.sandbox)

    def _maybe_finished(self, pot: PotState) -> None:
        """A stopping pot whose processes are all gone: record its end and answer the stoppers."""
        if not pot.stopping or pot.sandbox is not None or (pot.main and not pot.main_done):
            return
        if self.pots.get(pot.name) is not pot:
            return
        state = "stopped" if pot.signalled or pot.persistent else "exited"
        if pot.main is None:
            state = "stopped"
        self._update_run(pot, state=state, finished=time.time())
        body = {"state": state, "exit_code": pot.exit_code}
        for conn, rid in pot.stoppers:
            self.reply(conn, rid, body)
        pot.stoppers = []
        self._forget(pot)

    def _forget(self, pot: PotState) -> None:
        if pot.sandbox is not None:
            self.launcher.kill_sandbox(pot.sandbox)
        self._drain(pot)
        self._close_sinks(pot)
        self._close_pot_fds(pot)
        if pot.report >= 0:
            os.close(pot.report)
            pot.report = -1
        if pot.owner is not None:
            pot.owner.owns.discard(pot.name)
        for conn, rid in pot.stoppers:
            self.reply(conn, rid, {"state": None, "exit_code": pot.exit_code})
        pot.stoppers = []
        self.pots.pop(pot.name, None)

    def _discard(self, pot: PotState) -> None:
        """Undo a sandbox that never got its command (the starter failed or went away)."""
        if pot.sandbox is not None:
            self.launcher.kill_sandbox(pot.sandbox)
        pot.stopping = True
        if pot.sandbox is None or not self.procs.get(pot.sandbox.pid):
            self._forget(pot)

    def _close_pot_fds(self, pot: PotState) -> None:
        for fd in list(pot.fifos):
            self._drop_fifo(pot, fd)
        for stream in (1, 2):
            self._hold(f"{pot.name}/{stream}", None)
        if pot.log >= 0:
            os.close(pot.log)
            pot.log = -1

    def _kill(self, proc: Proc, sig: int, group: bool = False) -> None:
        """Signal a process (with `group`, its process group: a pot's command leads its own, so a
        shell and the programs it waits for all get it, as from a terminal or `jail -r`)."""
        if not proc.ours and not platform.alive(proc.pid, proc.start):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)

    # The runs table ------------------------------------------------------------------------------

    def _record_start(self, pot: PotState, m: dict[str, Any]) -> None:
        assert pot.main is not None
        row = {"pot": pot.name, "state": "running", "monitor_pid": self.me, "monitor_start": self.my_start,
               "init_pid": pot.sandbox.pid if pot.sandbox else None,
               "init_start": pot.sandbox.start if pot.sandbox else None,
               "main_pid": pot.main.pid, "main_start": pot.main.start, "persistent": int(pot.persistent),
               "on_exit": json.dumps(pot.on_exit) if pot.on_exit else None, "started": time.time(),
               "finished": None, "exit_code": None, "error": None}
        self.store.put("runs", {"pot": pot.name}, row)

    def _record_failure(self, name: str, error: str) -> None:
        now = time.time()
        self.store.put("runs", {"pot": name}, {
            "pot": name, "state": "failed", "monitor_pid": self.me, "monitor_start": self.my_start,
            "init_pid": None, "init_start": None, "main_pid": None, "main_start": None, "persistent": None,
            "on_exit": None, "started": now, "finished": now, "exit_code": None, "error": error})

    def _update_run(self, pot: PotState, **changes: Any) -> None:
        """Change the pot's run row, only while it is still this run's (same main process)."""
        if pot.main is None:
            return
        sets = ", ".join(f"{k}=?" for k in changes)
        self.store.db.execute(f"UPDATE runs SET {sets} WHERE pot=? AND main_pid=? AND main_start IS ?",
                              (*changes.values(), pot.name, pot.main.pid, pot.main.start))

    # Adopting the pots of a monitor that died ------------------------------------------------------

    def adopt(self) -> None:
        recorded = self._recorded_exits()
        for row in self.store.all("runs", state="running"):
            try:
                self._adopt(row, recorded)
            except (OSError, ValueError) as e:
                print(f"ladle monitor: cannot adopt pot {row['pot']}: {e}", file=sys.stderr)
        for path in recorded.values():  # exits of processes no pot claims
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _recorded_exits(self) -> dict[tuple[int, int | None], str]:
        found: dict[tuple[int, int | None], str] = {}
        with contextlib.suppress(FileNotFoundError):
            for entry in os.listdir(exits_dir(self.root)):
                pid_s, _, start_s = entry.partition(".")
                if pid_s.isdigit() and not entry.endswith(".tmp"):
                    key = (int(pid_s), None if start_s == "-" else int(start_s))
                    found[key] = os.path.join(exits_dir(self.root), entry)
        return found

    def _adopt(self, row: dict[str, Any], recorded: dict[tuple[int, int | None], str]) -> None:
        name = row["pot"]
        pot = PotState(name, persistent=bool(row.get("persistent", 1)),
                       on_exit=json.loads(row["on_exit"]) if row.get("on_exit") else None)
        if row.get("init_pid"):
            if platform.alive(row["init_pid"], row["init_start"]):
                pot.sandbox = Sandbox(row["init_pid"], row["init_start"])
                self.procs[pot.sandbox.pid] = Proc(pot.sandbox.pid, pot.sandbox.start, name, "pid1", False)
                if not self.watch.add(pot.sandbox.pid):
                    pot.sandbox = None
            if pot.sandbox is None and row.get("exit_code") is None and not recorded.get(
                    (row["main_pid"], row.get("main_start"))):
                return  # nothing of it is left and nothing to record: gc tears it down
        if row.get("main_pid") is None:
            return
        main = Proc(row["main_pid"], row.get("main_start"), name, "main", False)
        pot.main = main
        self.pots[name] = pot
        run_dir = os.path.join(self.root, "run", name)
        for n, fifo in ((1, "out.fifo"), (2, "err.fifo")):
            path = os.path.join(run_dir, fifo)
            if os.path.exists(path) and stat.S_ISFIFO(os.lstat(path).st_mode):
                self._add_fifo(pot, os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), n)
        log_path = os.path.join(self.root, "logs", f"{name}.log")
        pot.log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.store.db.execute("UPDATE runs SET monitor_pid=?, monitor_start=? WHERE pot=?",
                              (self.me, self.my_start, name))
        if row.get("exit_code") is not None:  # its command had ended before (a persistent pot)
            pot.main_done, pot.exit_code = True, row["exit_code"]
        elif platform.alive(main.pid, main.start):
            self.procs[main.pid] = main
            if not self.watch.add(main.pid):
                self._exits_of(main, recorded)
        else:
            self._exits_of(main, recorded)
        if pot.sandbox is None and self.launcher.name == "linux" and pot.main_done and not pot.stopping:
            pot.error = pot.error or "its pid 1 died"
            self._teardown(pot)

    def _exits_of(self, main: Proc, recorded: dict[tuple[int, int | None], str]) -> None:
        path = recorded.pop((main.pid, main.start), None)
        status = None
        if path is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(path) as f:
                    status = int(f.read().split()[2])
                os.unlink(path)
        self.procs[main.pid] = main
        self._ended(main, status)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except OSError as e:
            if e.errno != errno.EINTR:
                return


def serve(launcher: Launcher, args: list[str]) -> None:
    """`monitor ROOT --listen-fd N --keeper-fd M`, exec'd by the keeper."""
    root = args[0]
    listen_fd = int(args[args.index("--listen-fd") + 1])
    keeper_fd = int(args[args.index("--keeper-fd") + 1])
    idle = float(os.environ.get("LADLE_MONITOR_IDLE", "60"))
    platform.current.set_title(f"ladle-mon {root}")
    launcher.prepare_monitor()
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(STOPPED_BY_SIGNAL))
    listener = socket.socket(fileno=listen_fd)
    monitor = Monitor(root, launcher, listener, socket.socket(fileno=keeper_fd), idle)
    sys.exit(monitor.serve())

"""The monitor: one process per host that owns every running pot's processes.

It starts each pot's processes through the host's `Launcher`, copies their output into the pot's
log (`output`), records how each run ends in the `runs` table (`runs`), forwards signals, and tears
down a non-persistent pot when its command exits (by running `ladle stop` for it). One
single-threaded event loop serves every pot and every command, so a running pot costs a few file
descriptors and a few hundred bytes here, not a process.

Nothing about a pot lives only in this process: its output goes through FIFOs that outlive us, the
keeper (our parent) reaps and records the pots' processes when we die and holds their FIFOs, and
the `runs` table says which processes are whose. Killing the monitor therefore stops nothing: the
keeper starts another at once, which adopts every pot it finds alive (`adopt`). The monitor exits
by itself when it has had nothing to do for a while.

Requests (`protocol`): hello, status, sandbox, enter, spawn (main | exec), signal, stop, notice,
release, wait. A request that starts something is answered once it runs (the child's report pipe
says so); stop, release and wait are answered when what they wait for has happened.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import os
import select
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from ladle import platform
from ladle.errors import LadleError, StateError, UsageError
from ladle.state.store import Store
from ladle.supervise import life, protocol
from ladle.supervise.adopt import adopt
from ladle.supervise.keeper import exits_dir, monitor_idle
from ladle.supervise.launcher import Launcher, Sandbox
from ladle.supervise.output import Output
from ladle.supervise.records import Conn, PotState, Proc, Refusal, exit_code
from ladle.supervise.runs import Runs
from ladle.supervise.spawn import fork_child

STOPPED_BY_SIGNAL = 3        # exit code when asked to stop: the keeper starts another monitor
STATUS_WAIT = 5.0            # seconds to wait for the keeper's record of an adopted process
Reply = dict[str, Any] | None
_KINDS = {UsageError: "usage", StateError: "state"}


class Monitor:
    def __init__(self, root: str, launcher: Launcher, listener: socket.socket, keeper: socket.socket | None,
                 idle: float) -> None:
        self.root = root
        self.launcher = launcher
        self.listener = listener
        self.keeper = keeper
        self.idle = idle
        self.sel = selectors.DefaultSelector()
        self.watch = platform.current.exit_watcher()
        self.me = os.getpid()
        self.runs = Runs(Store(os.path.join(root, "ladle.db")), self.me, platform.start_time(self.me))
        self.output = Output(self.sel, self._hold, self._send_exit_events)
        self.pots: dict[str, PotState] = {}
        self.procs: dict[int, Proc] = {}
        self.conns: set[Conn] = set()
        self.statuses: dict[tuple[int, int | None], int] = {}  # from the keeper, before the exit was seen
        self.awaiting: set[int] = set()  # adopted pids that exited, waiting for the keeper's status
        self.spares: dict[tuple[str, ...], tuple[Sandbox, int]] = {}  # namespaces -> (pid 1, report)
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.pending: dict[str, float] = {}  # pots to start again (restart policies), and when
        self.seq = itertools.count()
        self.quiet_since = time.monotonic()
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, self._accept)
        self.sel.register(self.watch.fileno(), selectors.EVENT_READ, self._exits)
        if keeper is not None:
            self.sel.register(keeper, selectors.EVENT_READ, self._from_keeper)

    # The loop ------------------------------------------------------------------------------------

    def serve(self) -> int:
        adopt(self)
        while True:
            for key, mask in self.sel.select(self._timeout()):
                if self.sel.get_map().get(key.fd) is not key:
                    continue  # closed by an earlier event of this round (its number may be reused)
                try:
                    key.data(key.fileobj, mask)
                except Exception:  # a bug must not take every pot's monitor down: say it, go on
                    traceback.print_exc()
                    if self.sel.get_map().get(key.fd) is key:
                        self.sel.unregister(key.fd)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                heapq.heappop(self.timers)[2]()
            if self._idle() and now - self.quiet_since >= self.idle and not self._knocking():
                self._end_spares()
                return 0

    def _idle(self) -> bool:
        if self.pots or self.conns or self.pending or any(p.role != "spare" for p in self.procs.values()):
            self.quiet_since = time.monotonic()
            return False
        return True

    def _knocking(self) -> bool:
        """A command connected in the very moment we were going idle (its connection waits in
        the backlog): serve it."""
        if select.select([self.listener], [], [], 0)[0]:
            self.quiet_since = time.monotonic()
            return True
        return False

    def _timeout(self) -> float | None:
        deadline = self.timers[0][0] if self.timers else None
        if self._idle():
            end = self.quiet_since + self.idle
            deadline = end if deadline is None else min(deadline, end)
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self.seq), fn))

    # Connections -------------------------------------------------------------------------------

    def _accept(self, sock: Any, mask: int) -> None:
        try:
            conn_sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn = Conn(conn_sock)
        self.conns.add(conn)
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
        reply: Reply
        try:
            handler = getattr(self, f"op_{str(message.get('op', '')).replace('-', '_')}", None)
            if handler is None:
                raise Refusal("usage", f"unknown monitor request {message.get('op')!r}")
            reply = handler(conn, rid, message, fds)  # a handler takes the descriptors it keeps out of fds
        except Refusal as e:
            reply = {"error": str(e), "kind": e.kind}
        except LadleError as e:
            reply = {"error": str(e), "kind": _KINDS.get(type(e), "host")}
        except OSError as e:
            reply = {"error": f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}", "kind": "host"}
        except Exception as e:  # a bug: say it in the log, and answer, so the command does not wait forever
            traceback.print_exc()
            reply = {"error": f"monitor: {type(e).__name__}: {e}", "kind": "host"}
        finally:
            for fd in fds:
                os.close(fd)
        if reply is not None:
            self.reply(conn, rid, reply)

    def reply(self, conn: Conn, rid: Any, body: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            protocol.send(conn.sock, {"id": rid, **body})

    def _hang_up(self, conn: Conn) -> None:
        self.conns.discard(conn)
        self.sel.unregister(conn.sock)
        conn.sock.close()
        for name in list(conn.owns):  # a command that died half-way through a start
            pot = self.pots.get(name)
            if pot is not None and pot.owner is conn:
                self._discard(pot)
        for pot in list(self.pots.values()):
            pot.waiters = [w for w in pot.waiters if w[0] is not conn]
            pot.stoppers = [(c, r) for c, r in pot.stoppers if c is not conn]
            if pot.attached is conn:  # the `run` that was to tear it down went away
                pot.attached = None
                for stream in list(pot.sinks):
                    self.output.drop_sink(pot, stream)
                if pot.main_done and not pot.persistent and not pot.stopping:
                    self.teardown(pot)
        for proc in self.procs.values():
            if proc.conn is conn:
                proc.conn = None
                if proc.bound:  # a healthcheck whose `ladle healthcheck` gave up on it
                    self._kill(proc, signal.SIGKILL, group=True)
                    self._kill(proc, signal.SIGKILL)

    # Requests ----------------------------------------------------------------------------------

    def _pot(self, message: dict[str, Any]) -> PotState:
        name = str(message.get("pot", ""))
        pot = self.pots.get(name)
        if pot is None:
            raise Refusal("state", f"pot {name} is not running")
        return pot

    def op_hello(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> Reply:
        return {"pid": self.me, "start": self.runs.start, "launcher": self.launcher.name}

    def op_status(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> Reply:
        return {"pid": self.me, "pots": {
            p.name: {"init_pid": p.sandbox.pid if p.sandbox else None,
                     "main_pid": p.main.pid if p.main else None, "main_done": p.main_done,
                     "exit_code": p.exit_code, "stopping": p.stopping} for p in self.pots.values()}}

    def op_sandbox(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> Reply:
        """A pot's pid 1 in new namespaces, waiting; answered once the namespaces exist. A spare
        one made after the last start is taken when it has the namespaces asked for (making one
        is most of a start's time in the monitor), and another spare is made for the next."""
        name = str(m["pot"])
        if name in self.pots:
            raise Refusal("state", f"pot {name} is already running")
        namespaces = tuple(m.get("namespaces", ()))
        pot = PotState(name, owner=conn)
        spare = self.spares.pop(namespaces, None)
        if spare is not None and platform.alive(spare[0].pid, spare[0].start):
            pot.sandbox, pot.report = spare
            self._adopt_sandbox(pot, conn)
            self.later(0, functools.partial(self._make_spare, namespaces))  # after this answer
            try:
                self.launcher.place(pot.sandbox, m)
            except (OSError, LadleError):
                self._discard(pot)
                raise
            return {"pid": pot.sandbox.pid, "start": pot.sandbox.start}
        sandbox, child = self.launcher.sandbox(name, {**m, "title": f"ladle-pid1 {self.root}"})
        pot.sandbox = sandbox
        self._adopt_sandbox(pot, conn)
        self.watch.add(sandbox.pid)

        def failed(error: str | None) -> None:
            self.reply(conn, rid, {"error": error or "its pid 1 died", "kind": "host"})
            self._discard(pot)

        def ready() -> None:
            pot.report = child.report
            try:
                self.launcher.place(sandbox, m)
            except (OSError, LadleError) as e:
                failed(f"cannot put its pid 1 in its cgroup: {e}")
                return
            self.reply(conn, rid, {"pid": sandbox.pid, "start": sandbox.start})
            self._make_spare(namespaces)

        self._await_report(child.report, child.pid, failed, ready, must_live=True)
        return None

    def _adopt_sandbox(self, pot: PotState, conn: Conn) -> None:
        assert pot.sandbox is not None
        self.pots[pot.name] = pot
        conn.owns.add(pot.name)
        self.procs[pot.sandbox.pid] = Proc(pot.sandbox.pid, pot.sandbox.start, pot.name, "pid1", True)

    def _end_spares(self) -> None:
        for proc in [p for p in self.procs.values() if p.role == "spare"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)

    def _make_spare(self, namespaces: tuple[str, ...]) -> None:
        """A waiting pid 1 for the next start with these namespaces. A spare does not keep the
        monitor from going idle; when the monitor goes, its control pipe closes and it exits."""
        if namespaces in self.spares or any(p.role == "spare" and p.rid == namespaces for p in self.procs.values()):
            return
        sandbox, child = self.launcher.sandbox("spare", {"namespaces": list(namespaces),
                                                         "title": f"ladle-pid1 {self.root}"})
        self.procs[sandbox.pid] = Proc(sandbox.pid, sandbox.start, "", "spare", True, rid=namespaces)
        self.watch.add(sandbox.pid)

        def ready() -> None:
            if sandbox.pid in self.procs:
                self.spares[namespaces] = (sandbox, child.report)

        self._await_report(child.report, child.pid, lambda error: self.launcher.kill_sandbox(sandbox), ready,
                           must_live=True)

    def op_net(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> Reply:
        """A pot's host-side network steps, done by the launcher here: the monitor imports the
        network code once for all the pots it runs (not every command), and knows the waiting pid 1
        whose namespace the pot's end of its veth goes to. A pot that is not running may be asked
        for too (its network's removal after its end)."""
        pot = self.pots.get(str(m.get("pot")))
        return self.launcher.net(pot.sandbox if pot else None, m)

    def op_enter(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> Reply:
        """Let the waiting pid 1 build the pot's tree and exec its init; answered once it has."""
        pot = self._pot(m)
        sandbox = pot.sandbox
        if sandbox is None or sandbox.control < 0 or pot.report < 0:
            raise Refusal("state", f"pot {pot.name} has no waiting pid 1")
        report, pot.report = pot.report, -1
        self.launcher.enter(sandbox, m)

        def done(error: str | None) -> None:
            self.reply(conn, rid, {"error": error, "kind": "host"} if error else {"pid": sandbox.pid})

        self._await_report(report, sandbox.pid, done, must_live=True)
        return None

    def op_spawn(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> Reply:
        """The pot's command (`main`) or a command run in it (`exec`); answered once it runs."""
        if m.get("role") == "main":
            self._spawn_main(conn, rid, m, fds)
        elif m.get("role") == "exec":
            self._spawn_exec(conn, rid, m, fds)
        else:
            raise Refusal("usage", f"unknown role {m.get('role')!r}")
        return None

    def op_signal(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> Reply:
        pid = m.get("pid")
        if pid is not None:
            proc = self.procs.get(int(pid))
            if proc is None or proc.pot != m.get("pot"):
                raise Refusal("state", f"process {pid} is not one of pot {m.get('pot')}'s")
        else:
            pot = self._pot(m)
            if pot.main is None or pot.main_done:
                raise Refusal("state", f"the command of pot {pot.name} is not running")
            proc = pot.main
        self._kill(proc, int(m["signal"]))
        return {}

    def op_stop(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> Reply:
        """Stop a pot: SIGTERM to its command's process group, SIGKILL to its pid 1 after
        `timeout` (at once when the command has ended); answered when everything of it is gone."""
        pot = self.pots.get(str(m.get("pot")))
        if pot is None:
            return {"state": None}
        pot.stoppers.append((conn, rid))
        if pot.stopping:
            return None
        pot.stopping = True
        if pot.main and not pot.main_done:
            pot.signalled = True
            self._kill(pot.main, int(m.get("signal") or signal.SIGTERM), group=True)  # an image's StopSignal
            self.later(float(m.get("timeout", 10)), lambda: self._end_sandbox(pot))
        else:
            self._end_sandbox(pot)
        self._maybe_finished(pot)
        return None

    def op_notice(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> Reply:
        """A stop is coming from outside (`jail -r` on FreeBSD): the end will be 'stopped'."""
        pot = self.pots.get(str(m.get("pot")))
        if pot is not None:
            pot.stopping = True
            pot.signalled = pot.signalled or bool(pot.main and not pot.main_done)
        return {}

    def op_release(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> Reply:
        """Answered once every process of the pot is gone and its end is recorded."""
        pot = self.pots.get(str(m.get("pot")))
        if pot is None:
            return {"state": None}
        pot.stopping = True
        pot.stoppers.append((conn, rid))
        self._maybe_finished(pot)
        return None

    def op_wait(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> Reply:
        """Answered when the pot's command exits (at once if it has)."""
        pot = self.pots.get(str(m.get("pot")))
        if pot is None or pot.main_done:
            return {"exit_code": pot.exit_code if pot else None}
        pot.waiters.append((conn, rid, False))
        return None

    # Starting processes ------------------------------------------------------------------------

    def _await_report(self, fd: int, pid: int, done: Callable[[str | None], None],
                      ready: Callable[[], None] | None = None, must_live: bool = False,
                      proc: Proc | None = None) -> None:
        """Read a child's report pipe: `E reason` is a failure; EOF means it exec'd (a command may
        well have ended already; a pid 1, `must_live`, must still be there). With `ready`, a first
        `K` line means its sandbox exists: `ready()` is called and the pipe is kept in
        `PotState.report` until `enter`. The exit of `proc` (a command) is handled only after its
        report, whichever the kernel tells first: a command that ends at once is still recorded
        as started, then as ended."""
        buf = bytearray()
        if proc is not None:
            proc.reporting = True

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
                if error is None and must_live and _exited(pid):
                    error = "it died while it was being set up"
                done(error)
                if proc is not None:
                    proc.reporting = False
                    if proc.status is not None:
                        self.ended(proc, proc.status[0])

        os.set_blocking(fd, False)
        self.sel.register(fd, selectors.EVENT_READ, readable)

    def _spawn_main(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> None:
        name = str(m["pot"])
        pot = self.pots.get(name)
        if pot is None:
            if self.launcher.name == "linux":
                raise Refusal("state", f"pot {name} has no sandbox")
            pot = PotState(name, owner=conn)  # a jail is its own sandbox: the start plan made it
            self.pots[name] = pot
            conn.owns.add(name)
        if pot.main is not None:
            raise Refusal("state", f"pot {name} already runs its command")
        pot.persistent = bool(m.get("persistent", True))
        pot.on_exit = list(m["on_exit"]) if m.get("on_exit") else None
        attach = bool(m.get("attach"))
        writers = self.output.open(pot, str(m["log"]), str(m["run_dir"]), split=attach)
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        try:
            child = self.launcher.spawn(name, pot.sandbox, m, [null, *writers], tty=False)
        except BaseException:
            self.output.close(pot)
            if not pot.sandbox:
                self._forget(pot)
            raise
        finally:
            for fd in {null, *writers}:
                os.close(fd)
        if attach:
            self.output.attach(pot, _take(fds))
            pot.waiters.append((conn, rid, True))
            pot.attached = conn
        proc = Proc(child.pid, platform.current.start_time(child.pid, zombies=True), name, "main", True)
        self.procs[child.pid] = proc
        self.watch.add(child.pid)

        def execd(error: str | None) -> None:
            if error:
                pot.waiters = [w for w in pot.waiters if w[0] is not conn or w[1] != rid]
                pot.attached = None
                self.output.close_sinks(pot)
                self.runs.failed(name, error)
                self.reply(conn, rid, {"error": error, "kind": "host"})
                self._kill(proc, signal.SIGKILL)
                return
            pot.main, pot.owner = proc, None
            conn.owns.discard(name)
            self.runs.started(pot)
            life.configure(self, pot)
            self.reply(conn, rid, {"pid": proc.pid, "start": proc.start})

        self._await_report(child.report, child.pid, execd, proc=proc)

    def _spawn_exec(self, conn: Conn, rid: Any, m: dict[str, Any], fds: list[int]) -> None:
        if len(fds) != 3:
            raise Refusal("usage", "exec needs three descriptors (stdin, stdout, stderr)")
        pot = self._pot(m)
        stdio = _take(fds)
        try:
            child = self.launcher.spawn(pot.name, pot.sandbox, m, stdio, tty=bool(m.get("tty")))
        finally:
            for fd in stdio:
                os.close(fd)
        proc = Proc(child.pid, platform.current.start_time(child.pid, zombies=True), pot.name, "exec", True, conn, rid,
                    bound=bool(m.get("bound")))
        self.procs[child.pid] = proc
        self.watch.add(child.pid)

        def execd(error: str | None) -> None:
            if error:
                proc.conn = None
                self.reply(conn, rid, {"error": error, "kind": "host"})
                self._kill(proc, signal.SIGKILL)
            else:
                self.reply(conn, rid, {"pid": child.pid})

        self._await_report(child.report, child.pid, execd, proc=proc)

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

    # Exits -------------------------------------------------------------------------------------

    def _exits(self, fd: Any, mask: int) -> None:
        for pid in self.watch.exited():
            proc = self.procs.get(pid)
            if proc is None:
                continue
            if proc.ours:
                try:
                    status: int | None = os.waitpid(pid, 0)[1]
                except ChildProcessError:
                    status = None
                if proc.reporting:
                    proc.status = (status,)
                else:
                    self.ended(proc, status)
            else:
                self.await_status(proc)

    def await_status(self, proc: Proc) -> None:
        """An adopted process exited: its status comes from the keeper (it reaped it)."""
        status = self.statuses.pop((proc.pid, proc.start), None)
        if status is not None:
            self.ended(proc, status)
            return
        self.awaiting.add(proc.pid)
        self.later(STATUS_WAIT, functools.partial(self._status_lost, proc))

    def _status_lost(self, proc: Proc) -> None:
        if proc.pid in self.awaiting:
            self.awaiting.discard(proc.pid)
            self.ended(proc, None)

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
        if message.get("op") != "exit":
            return
        pid, start, status = int(message["pid"]), message.get("start"), int(message["status"])
        proc = self.procs.get(pid)
        if proc is None or proc.ours or (proc.start is not None and start is not None and proc.start != start):
            return
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(exits_dir(self.root), f"{pid}.{'-' if start is None else start}"))
        if pid in self.awaiting:
            self.awaiting.discard(pid)
            self.ended(proc, status)
        else:
            self.statuses[(pid, proc.start)] = status

    def _hold(self, key: str, fd: int | None) -> None:
        """Have the keeper hold (fd) or drop (None) a descriptor of a pot's FIFO."""
        if self.keeper is None:
            return
        with contextlib.suppress(OSError):
            protocol.send(self.keeper, {"op": "hold" if fd is not None else "drop", "key": key},
                          [fd] if fd is not None else [])

    def ended(self, proc: Proc, status: int | None) -> None:
        self.procs.pop(proc.pid, None)
        code = exit_code(status)
        if proc.role == "exec":
            if proc.conn is not None:
                with contextlib.suppress(OSError):
                    protocol.send(proc.conn.sock, {"event": "exit", "id": proc.rid, "pid": proc.pid,
                                                   "exit_code": code})
            return
        if proc.role == "health":
            life.checked(self, proc, code)
            return
        if proc.role in ("teardown", "restart"):
            if code:
                print(f"ladle monitor: {proc.role} of pot {proc.pot} ended with {code}", file=sys.stderr)
            return
        if proc.role == "spare":
            for namespaces, (sandbox, report) in list(self.spares.items()):
                if sandbox.pid == proc.pid:
                    del self.spares[namespaces]
                    os.close(report)
            return
        pot = self.pots.get(proc.pot)
        if pot is None:
            return
        if proc.role == "main":
            self._main_ended(pot, code, status is None)
        elif proc.role == "pid1":
            pot.sandbox = None
            if pot.main is None:
                self._forget(pot)  # a sandbox that never ran its command
                return
            if not pot.stopping:
                pot.error = pot.error or "its pid 1 died"
                life.decide(self, pot, pot.exit_code)
                self.teardown(pot)
        self._maybe_finished(pot)

    def _main_ended(self, pot: PotState, code: int | None, lost: bool) -> None:
        pot.main_done = True
        pot.exit_code = code
        if lost:
            pot.error = "its exit status was lost (its monitor and keeper were killed)"
        self.output.drain(pot)
        self.runs.update(pot, exit_code=code, finished=time.time(), error=pot.error)
        self.output.close_sinks(pot)
        if not pot.sinks:
            self._send_exit_events(pot)
        if pot.stopping:  # the command obeyed the stop: what is left of the pot goes at once
            self._end_sandbox(pot)
        elif not pot.persistent and not pot.attached:  # an attached `run` tears it down itself
            life.decide(self, pot, code)
            self.teardown(pot)

    def _send_exit_events(self, pot: PotState) -> None:
        """Tell whoever waits for the command (`wait`, an attached `run`, after all its output)."""
        if not pot.main_done:
            return
        waiters, pot.waiters = pot.waiters, []
        for conn, rid, event in waiters:
            body = {"id": rid, "pot": pot.name, "exit_code": pot.exit_code}
            with contextlib.suppress(OSError):
                protocol.send(conn.sock, {"event": "exit", **body} if event else body)

    # Ending pots -------------------------------------------------------------------------------

    def teardown(self, pot: PotState) -> None:
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
        state = "stopped" if pot.main is None or pot.signalled or pot.persistent else "exited"
        if pot.restart_at is not None and pot.main is not None:  # its policy starts it again
            state = "restarting"
            life.arm(self, pot.name, pot.restart_at)
        self.runs.update(pot, state=state, finished=time.time())
        for conn, rid in pot.stoppers:
            self.reply(conn, rid, {"state": state, "exit_code": pot.exit_code})
        pot.stoppers = []
        self._forget(pot)

    def _forget(self, pot: PotState) -> None:
        if pot.sandbox is not None:
            self.launcher.kill_sandbox(pot.sandbox)
        self.output.close(pot)
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
        pot.stopping = True
        if pot.sandbox is not None and pot.sandbox.pid in self.procs:
            self.launcher.kill_sandbox(pot.sandbox)  # its exit forgets the pot
        else:
            self._forget(pot)


def _take(fds: list[int]) -> list[int]:
    """Take the descriptors a request came with (what is left in `fds` is closed after it)."""
    taken = list(fds)
    fds.clear()
    return taken


def _exited(pid: int) -> bool:
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def serve(launcher: Launcher, args: list[str]) -> None:
    """`monitor ROOT --listen-fd N --keeper-fd M`, exec'd by the keeper."""
    root = args[0]
    listen_fd = int(args[args.index("--listen-fd") + 1])
    keeper_fd = int(args[args.index("--keeper-fd") + 1])
    idle = monitor_idle()
    platform.current.set_title(f"ladle-mon {root}")
    launcher.prepare_monitor()
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(STOPPED_BY_SIGNAL))
    listener = socket.socket(fileno=listen_fd)
    sys.exit(Monitor(root, launcher, listener, socket.socket(fileno=keeper_fd), idle).serve())

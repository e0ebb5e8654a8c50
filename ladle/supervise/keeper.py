"""The keeper: the monitor's parent, and the reaper of whatever a dead monitor leaves behind.

It is the first process a command starts when no monitor answers. It holds `run/keeper.lock` for
its whole life (so there is only one), listens on `run/monitor.sock` and passes the listening
socket to the monitor it starts. When the monitor dies, the socket stays open here, so commands
keep connecting (their connections wait in the backlog) and a new monitor, started at once,
answers them.

Pots keep running when their monitor dies: the keeper has made itself the reaper of its
descendants, so the pots' processes become its children. When one of them exits, the keeper
records its wait status in `run/exits/<pid>.<start>` and tells the monitor on their channel; the
new monitor finds the ones that exited while there was none. No exit status is lost. The monitor
also hands the keeper a descriptor of each pot's output FIFOs, which the keeper holds until the
pot is done: a FIFO's buffered data is freed when nobody has it open, so without this the last
output of a command that ends while no monitor runs would be lost.

The keeper imports almost nothing (it runs with `python -S`) and does nothing else, so it has
little that can fail; when the monitor exits because it is idle, the keeper exits too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import sys
import time

from ladle import platform
from ladle.errors import UsageError
from ladle.supervise import protocol
from ladle.supervise.protocol import SOCKET_NAME

QUICK = 2.0        # a monitor that dies sooner than this after its start is failing
GIVE_UP = 8        # quick failures in a row before the keeper stops trying
WAITED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def monitor_idle() -> float:
    """How long an idle monitor (no pot, no client) stays: $LADLE_MONITOR_IDLE seconds, or 60.
    Checked by the command that starts the keeper too, so a bad value is its one-line error and
    not a monitor that keeps failing."""
    raw = os.environ.get("LADLE_MONITOR_IDLE") or "60"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:  # nan too
        raise UsageError(f"LADLE_MONITOR_IDLE takes seconds from 0 to 86400, not {raw!r}")
    return value


def exits_dir(root: str) -> str:
    return os.path.join(root, "run", "exits")


def record_exit(root: str, pid: int, start: int | None, status: int) -> None:
    """Write the wait status of an orphan atomically, for a monitor that is not there yet."""
    name = f"{pid}.{start if start is not None else '-'}"
    path = os.path.join(exits_dir(root), name)
    with open(path + ".tmp", "w") as f:
        f.write(f"{pid} {start if start is not None else '-'} {status}\n")
    os.replace(path + ".tmp", path)


class Keeper:
    def __init__(self, root: str, monitor_argv: list[str], listener: socket.socket) -> None:
        self.root = root
        self.argv = monitor_argv
        self.listener = listener
        self.monitor = 0
        self.started = 0.0
        self.failures = 0
        self.respawn_at: float | None = None
        self.chan: socket.socket | None = None
        self.held: dict[str, int] = {}  # the pots' output FIFOs, kept open for the next monitor
        self.stopping = False
        self.socket_ino = os.stat(os.path.join(root, "run", SOCKET_NAME)).st_ino

    def spawn_monitor(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                listen = self.listener.fileno()
                os.set_inheritable(listen, True)
                os.set_inheritable(theirs.fileno(), True)
                for sig in WAITED:
                    signal.signal(sig, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                os.execv(self.argv[0], [*self.argv, "--listen-fd", str(listen), "--keeper-fd",
                                        str(theirs.fileno())])
            finally:
                os._exit(127)
        theirs.close()
        if self.chan is not None:
            self.chan.close()
        self.chan = ours
        self.monitor, self.started, self.respawn_at = pid, time.monotonic(), None

    def monitor_ended(self, status: int) -> None:
        self.monitor = 0
        if self.chan is not None:
            self.chan.close()
            self.chan = None
        code = os.waitstatus_to_exitcode(status)
        if self.stopping:
            return
        if code == 0:  # it was idle: go too, unless a command connected meanwhile
            if select.select([self.listener], [], [], 0)[0]:
                self.respawn_at = time.monotonic()
            else:
                self.stopping = True
            return
        quick = time.monotonic() - self.started < QUICK
        self.failures = self.failures + 1 if quick else 0
        print(f"ladle keeper: the monitor ended with {code}; starting another", file=sys.stderr)
        if self.failures >= GIVE_UP:
            print("ladle keeper: the monitor keeps failing; giving up", file=sys.stderr)
            self.stopping = True
            return
        self.respawn_at = time.monotonic() + (min(0.1 * 2 ** self.failures, 30.0) if quick else 0.0)

    def reap(self) -> bool:
        """Reap every child that has exited; False when there are no children left."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return False
            if info is None:
                return True
            pid = info.si_pid
            start = platform.current.start_time(pid, zombies=True)  # who it was, before it goes
            _, status = os.waitpid(pid, 0)
            if pid == self.monitor:
                self.monitor_ended(status)
                continue
            record_exit(self.root, pid, start, status)
            if self.chan is not None:
                with contextlib.suppress(OSError):  # no monitor reads it now: the file is enough
                    protocol.send(self.chan, {"op": "exit", "pid": pid, "start": start, "status": status})

    def from_monitor(self) -> None:
        """`hold KEY` with a descriptor (a pot's FIFO: its buffered output outlives the monitor),
        `drop KEY` once the pot is done."""
        assert self.chan is not None
        try:
            message, fds = protocol.receive(self.chan)
        except OSError:
            message, fds = None, []
        if message is None:
            self.chan.close()
            self.chan = None
            return
        key = str(message.get("key"))
        old = self.held.pop(key, -1)
        if old >= 0:
            os.close(old)
        if message.get("op") == "hold" and fds:
            self.held[key] = fds.pop(0)
        for fd in fds:
            os.close(fd)

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig in WAITED:
            signal.signal(sig, self.signalled)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WAITED)
        self.spawn_monitor()
        children = True
        while True:
            timeout = None if self.respawn_at is None else max(0.0, self.respawn_at - time.monotonic())
            readers: list[int] = [wake_r, *([self.chan.fileno()] if self.chan is not None else [])]
            readable, _, _ = select.select(readers, [], [], timeout)
            if wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
                children = self.reap()
            if self.chan is not None and self.chan.fileno() in readable:
                self.from_monitor()
            if self.respawn_at is not None and time.monotonic() >= self.respawn_at:
                self.spawn_monitor()
            if self.stopping and not self.monitor:
                if not children:
                    return
                # orphans of a monitor that went away: keep recording their exits, but let a new
                # keeper take over the socket
                self.close_listener()

    def signalled(self, sig: int, frame: object) -> None:
        if sig != signal.SIGCHLD:
            self.stopping = True
            if self.monitor:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.monitor, signal.SIGTERM)

    def close_listener(self) -> None:
        """Stop listening; the socket's name goes too, unless a newer keeper has bound it since."""
        if self.listener.fileno() < 0:
            return
        path = os.path.join(self.root, "run", SOCKET_NAME)
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == self.socket_ino:
                os.unlink(path)
        self.listener.close()


def listen(root: str) -> socket.socket:
    path = os.path.join(root, "run", SOCKET_NAME)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a dead keeper's: we hold the lock, so no live one uses it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(128)
    return sock


def main(args: list[str]) -> None:
    """`keeper ROOT READY_FD MONITOR_ARGV_JSON`: started detached by `supervise.client`."""
    root, ready, argv = args[0], int(args[1]), json.loads(args[2])
    signal.pthread_sigmask(signal.SIG_BLOCK, WAITED)
    lock = os.open(os.path.join(root, "run", "keeper.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.write(ready, b"B")  # another keeper is alive: the caller connects to it
        return
    platform.current.acquire_reaper()
    platform.current.set_title(f"ladle-mon-keeper {root}")
    os.makedirs(exits_dir(root), mode=0o700, exist_ok=True)
    keeper = Keeper(root, argv, listen(root))
    os.write(ready, b"R")
    os.close(ready)
    try:
        keeper.serve()
    finally:
        keeper.close_listener()

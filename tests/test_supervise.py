"""Supervision pieces on their own: the mini-init, the daemon spawn, pidfds, run records, logs."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ladle import proc
from ladle.state.store import Store
from ladle.supervise import daemon, init, logs, pidfd, record, runs, supervisor

# The mini-init ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _init(argv: list[str], persistent: bool) -> Iterator[tuple[int, int]]:
    """Fork a mini-init whose main process runs argv; yields (init pid, main pid) and makes sure
    the init is gone afterwards, whatever the test did."""
    r, w = os.pipe()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, init.WAITED)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            main = os.fork()
            if main == 0:
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                os.execvp(argv[0], argv)
            os.write(w, str(main).encode())
            os.close(w)
            init.run(main, persistent)
        finally:
            os._exit(99)
    signal.pthread_sigmask(signal.SIG_SETMASK, old)
    os.close(w)
    main = int(os.read(r, 64))
    os.close(r)
    try:
        yield pid, main
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _exit_code(pid: int) -> int:
    return init.exit_code(os.waitpid(pid, 0)[1])


def _gone(pid: int, timeout: float) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:  # exited and already reaped
        return True
    try:
        return pidfd.wait(fd, timeout)
    finally:
        os.close(fd)


def test_init_exits_with_the_main_process_status() -> None:
    with _init(["sh", "-c", "exit 7"], persistent=False) as (pid, _):
        assert _exit_code(pid) == 7
    with _init(["true"], persistent=False) as (pid, _):
        assert _exit_code(pid) == 0


def test_init_forwards_signals_and_reports_128_plus_signal() -> None:
    with _init(["sleep", "1000"], persistent=False) as (pid, main):
        os.kill(pid, signal.SIGTERM)
        assert _exit_code(pid) == 128 + signal.SIGTERM
        assert not proc.alive(main, None)


def test_persistent_init_outlives_its_main_process_until_stopped() -> None:
    with _init(["sh", "-c", "exit 4"], persistent=True) as (pid, main):
        assert _gone(main, 10)
        assert not _gone(pid, 0.1)  # still serving as init
        os.kill(pid, signal.SIGHUP)  # not a stop signal: ignored without a main process
        assert not _gone(pid, 0.05)
        os.kill(pid, signal.SIGTERM)
        assert _exit_code(pid) == 4


def test_exit_code() -> None:
    assert init.exit_code(0) == 0
    assert init.exit_code(3 << 8) == 3
    assert init.exit_code(signal.SIGKILL) == 137


# The daemon ------------------------------------------------------------------------------------

def test_spawn_reports_and_detaches(tmp_path: Path) -> None:
    lock = os.open(tmp_path / "held.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        def body(chan: socket.socket) -> int:
            fds = sorted(os.listdir("/proc/self/fd"))
            held = any(os.readlink(f"/proc/self/fd/{fd}").endswith("held.lock") for fd in fds
                       if os.path.exists(f"/proc/self/fd/{fd}"))
            chan.sendall(f"R {os.getpid()} {os.getsid(0)} {os.getppid()} {held}".encode())
            chan.shutdown(socket.SHUT_WR)
            chan.recv(1)  # until the caller closes its end
            return 0

        report, chan = daemon.spawn(body)
        _, pid, sid, ppid, held = report.split()
        assert held == "False"  # the daemon never holds the caller's locks
        assert int(sid) != os.getsid(0) and int(ppid) != os.getpid()
        assert not _gone(int(pid), 0)
        chan.close()
        assert _gone(int(pid), 10)
    finally:
        os.close(lock)


def test_spawn_reports_a_failing_body() -> None:
    def body(chan: socket.socket) -> int:
        raise RuntimeError("boom")

    report, chan = daemon.spawn(body)
    chan.close()
    assert report == "E supervisor failed: RuntimeError: boom"

    report, chan = daemon.spawn(lambda chan: 0)
    chan.close()
    assert report == ""


# pidfds -------------------------------------------------------------------------------------------

def test_pidfd_checks_identity_and_waits() -> None:
    pid = os.fork()
    if pid == 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.execvp("sleep", ["sleep", "1000"])
    try:
        start = proc.start_time(pid)
        assert pidfd.open_verified(pid, (start or 0) + 1) is None  # another process by that pid
        fd = pidfd.open_verified(pid, start)
        assert fd is not None
        assert not pidfd.wait(fd, 0)
        assert pidfd.send(fd, signal.SIGTERM)
        assert pidfd.wait(fd, 10)
        os.waitpid(pid, 0)
        assert not pidfd.send(fd, signal.SIGTERM)
        os.close(fd)
        assert pidfd.open_verified(pid, start) is None
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


# Run records --------------------------------------------------------------------------------------

@pytest.fixture
def store_path(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "ladle.db")
    Store(path).close()
    yield path


def test_runs_write_respects_a_newer_supervisor(store_path: str) -> None:
    runs.write(store_path, "web", runs.running(10, 1, 11, 1, 12))
    runs.write(store_path, "web", runs.ended(runs.running(99, 1, 98, 1, 97), "exited", 0),
               only_if_supervisor=99)
    store = Store(store_path)
    row = store.get("runs", pot="web")
    assert row is not None and row["state"] == "running" and row["supervisor_pid"] == 10
    runs.write(store_path, "web", runs.ended(runs.running(10, 1, 11, 1, 12), "exited", 3),
               only_if_supervisor=10)
    row = store.get("runs", pot="web")
    assert row is not None and row["state"] == "exited" and row["exit_code"] == 3
    store.close()


def test_recorder_writes_from_a_fresh_interpreter(store_path: str) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            record.exec_recorder(store_path, "web", runs.ended(runs.running(1, 1, 2, 2, 3), "exited", 5))
        finally:
            os._exit(99)
    assert _exit_code(pid) == 0
    store = Store(store_path)
    row = store.get("runs", pot="web")
    store.close()
    assert row is not None and row["state"] == "exited" and row["exit_code"] == 5


def test_exit_file_is_for_its_own_supervisor(tmp_path: Path) -> None:
    path = str(tmp_path / "exit")
    supervisor._write_exit(path, {"supervisor_pid": 5, "exit_code": 1})
    assert supervisor.read_exit(path, 6) is None
    assert not os.path.exists(path)
    supervisor._write_exit(path, {"supervisor_pid": 5, "exit_code": 1})
    assert supervisor.read_exit(path, 5) == {"supervisor_pid": 5, "exit_code": 1}


# Logs ---------------------------------------------------------------------------------------------

def _writer(path: Path, lines: list[str], done: threading.Event, created: threading.Event | None = None,
            ) -> threading.Thread:
    def run() -> None:
        if created is not None:
            created.wait(10)
        for line in lines:
            with open(path, "a") as f:
                f.write(line)
        done.set()

    t = threading.Thread(target=run)
    t.start()
    return t


def test_follow_prints_the_log_then_what_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "web.log"
    path.write_text("old\n")
    done = threading.Event()
    out = io.BytesIO()
    t = _writer(path, ["one\n", "two\n"], done)
    logs.follow(str(path), lambda: not done.is_set(), out)
    t.join()
    assert out.getvalue() == b"old\none\ntwo\n"


def test_follow_waits_for_the_log_to_appear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "RECHECK", 0.05)  # the writer's last act is not a file event
    path = tmp_path / "later.log"
    done, go = threading.Event(), threading.Event()
    out = io.BytesIO()
    t = _writer(path, ["first\n"], done, go)
    calls = []

    def running() -> bool:
        calls.append(1)
        go.set()
        return not done.is_set()

    logs.follow(str(path), running, out)
    t.join()
    assert out.getvalue() == b"first\n"


def test_follow_returns_at_once_for_a_stopped_pot(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("all\n")
    out = io.BytesIO()
    logs.follow(str(path), lambda: False, out)
    assert out.getvalue() == b"all\n"
    out = io.BytesIO()
    logs.dump(str(path), out)
    assert out.getvalue() == b"all\n"


def test_follow_sleeps_on_inotify_not_a_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "quiet.log"
    path.write_text("")
    monkeypatch.setattr(logs, "RECHECK", 0.1)
    calls = []

    def running() -> bool:
        calls.append(1)
        return len(calls) < 4

    before = os.times()
    logs.follow(str(path), running, io.BytesIO())
    used = os.times()
    assert len(calls) == 4  # woken only by the re-check timeout, three times in 0.3 s
    assert (used.user - before.user) + (used.system - before.system) < 0.1

"""The monitor and its keeper, on their own and with the FreeBSD launcher (jexec faked at the
command boundary only, by tests/fakes/jexec): processes owned, logs and exit statuses kept when
the monitor is killed, non-persistent teardown, exec, the wire protocol, the platform seams."""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ladle
from ladle import platform
from ladle.hosts.base import RunRecord, RuntimeSpec
from ladle.hosts.freebsd import FreeBSDHost
from ladle.platform.freebsd import parse_kinfo_proc
from ladle.storage.snapshotter import Mount
from ladle.supervise import attach, logs, protocol
from ladle.supervise.client import MonitorClient
from ladle.supervise.records import exit_code
from tests.freebsd_monitor import FreeBSDPots
from tests.linux_fixtures import wait_pid
from tests.recording_runner import RecordingRunner

# The FreeBSD launcher --------------------------------------------------------------------------

def test_the_monitor_runs_jexec_and_records_the_run(freebsd: FreeBSDPots, tmp_path: Path) -> None:
    row = freebsd.start("web", ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert row["state"] == "running" and row["monitor_pid"] == freebsd.monitor_pid()
    ended = freebsd.wait_ended("web")
    assert (tmp_path / "jexec.log").read_text().startswith("jexec -U root web /bin/sh -c")
    assert ended["exit_code"] == 3 and ended["state"] == "running"  # persistent: the jail stays
    assert sorted(freebsd.log("web").split()) == ["err", "out"]
    freebsd.stop("web")
    assert freebsd.row("web")["state"] == "stopped"


def test_a_non_persistent_pot_is_torn_down_when_its_command_ends(freebsd: FreeBSDPots, tmp_path: Path) -> None:
    marker = tmp_path / "torn-down"
    teardown = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('stop')"]
    freebsd.start("job", ["/bin/sh", "-c", "exit 4"], persistent=False, on_exit=teardown)
    assert freebsd.wait_ended("job")["exit_code"] == 4
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.read_text() == "stop"  # on FreeBSD this is `ladle stop job`: jail -r, umount


def test_an_attached_start_streams_the_jails_output_apart_and_leaves_the_teardown_to_its_caller(
        freebsd: FreeBSDPots, tmp_path: Path) -> None:
    """`run` and a non-persistent `start` on FreeBSD: stdout and stderr reach the caller's pipes,
    the exit code its wait; the monitor does not tear the pot down under it."""
    marker = tmp_path / "torn-down"
    teardown = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('stop')"]
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    freebsd.ctx.attach = (out_w, err_w)
    try:
        freebsd.start("job", ["/bin/sh", "-c", "echo out; echo err >&2; exit 4"], persistent=False,
                      on_exit=teardown)
    finally:
        freebsd.ctx.attach = None
        os.close(out_w)
        os.close(err_w)
    got: dict[int, bytearray] = {out_r: bytearray(), err_r: bytearray()}
    try:
        code = attach.wait(freebsd.monitor, {"pot": "job"}, {fd: buf.extend for fd, buf in got.items()})
    finally:
        os.close(out_r)
        os.close(err_r)
    assert (code, bytes(got[out_r]), bytes(got[err_r])) == (4, b"out\n", b"err\n")
    assert freebsd.wait_ended("job")["exit_code"] == 4 and not marker.exists()
    assert sorted(freebsd.log("job").split()) == ["err", "out"]  # the log keeps both
    freebsd.stop("job")


def test_a_stopped_command_ends_stopped_with_its_signal(freebsd: FreeBSDPots) -> None:
    freebsd.start("long", ["sleep", "1000"])
    freebsd.stop("long")
    row = freebsd.row("long")
    assert row["state"] == "stopped" and row["exit_code"] == 128 + signal.SIGTERM


def test_a_missing_jail_fails_with_jexecs_message(freebsd: FreeBSDPots) -> None:
    freebsd.start("missing", ["true"])
    assert freebsd.wait_ended("missing")["exit_code"] == 1
    assert 'jail "missing" not found' in freebsd.log("missing")


def test_exec_returns_the_code_of_the_command_in_the_jail(freebsd: FreeBSDPots,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    freebsd.start("box", ["sleep", "1000"])
    spec = RuntimeSpec(name="box", hostname="box", root=[Mount("bind", "/", "/")], mounts=[], cmd="", env={"A": "1"},
                       attrs={}, network="inherit", log_path="", run_dir="")
    code = freebsd.host.exec(spec, RunRecord("box", "running"), ["sh", "-c", "echo inside $A; exit 6"],
                             freebsd.monitor, tty=False, env={})
    assert code == 6
    assert capfd.readouterr().out == "inside 1\n"
    freebsd.stop("box")


def test_a_killed_monitor_loses_no_log_line_and_no_exit_status(freebsd: FreeBSDPots, tmp_path: Path) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)
    freebsd.start("job", ["/bin/sh", "-c", f"echo before; read x < {go}; echo after; exit 9"])
    first = freebsd.monitor_pid()
    os.kill(first, signal.SIGKILL)
    wait_pid(first, None)
    with open(go, "w") as f:  # the command goes on, writes and exits while no monitor runs
        f.write("now\n")
    freebsd.monitor.close()
    assert freebsd.monitor_pid() != first  # the keeper started another, which adopted the pot
    ended = freebsd.wait_ended("job")
    assert ended["exit_code"] == 9
    assert freebsd.log("job").split() == ["before", "after"]
    freebsd.stop("job")


# The monitor on its own ----------------------------------------------------------------------

def test_the_monitor_starts_on_demand_and_goes_when_idle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LADLE_MONITOR_IDLE", "0.2")
    root = tmp_path / "root"
    ladle.Client(str(root)).init()
    monitor = MonitorClient(str(root), FreeBSDHost(RecordingRunner(), str(root)).monitor_argv())
    hello = monitor.request("hello")
    assert hello["launcher"] == "freebsd"
    keeper = _parent(hello["pid"])
    assert _cmdline(keeper).startswith(f"ladle-mon-keeper {root}")
    assert _cmdline(hello["pid"]).startswith(f"ladle-mon {root}")
    monitor.close()
    wait_pid(hello["pid"], hello["start"])
    wait_pid(keeper, None)
    assert not (root / "run" / "monitor.sock").exists()


def test_bad_requests_get_one_line_errors(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ladle.Client(str(root)).init()
    monitor = MonitorClient(str(root), FreeBSDHost(RecordingRunner(), str(root)).monitor_argv())
    try:
        with pytest.raises(ladle.LadleError, match="unknown monitor request 'frobnicate'"):
            monitor.request("frobnicate")
        with pytest.raises(ladle.StateError, match="pot nosuch is not running"):
            monitor.request("signal", pot="nosuch", signal=15)
        with pytest.raises(ladle.UsageError, match="three descriptors"):
            monitor.request("spawn", role="exec", pot="x")
        protocol_sock = monitor.sock
        protocol_sock.send(b"not json")
        message, _ = protocol.receive(protocol_sock)
        assert message is not None and "unknown monitor request" in str(message.get("error"))
        assert monitor.request("hello")["launcher"] == "freebsd"  # still serving
    finally:
        monitor.close()


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()


def test_exit_codes_read_like_a_shell() -> None:
    assert exit_code(3 << 8) == 3
    assert exit_code(signal.SIGKILL) == 128 + signal.SIGKILL
    assert exit_code(None) is None


# The platform seams ------------------------------------------------------------------------------

def test_process_identity_survives_pid_reuse() -> None:
    child = subprocess.Popen(["sleep", "100"])
    start = platform.start_time(child.pid)
    assert start is not None and platform.alive(child.pid, start)
    assert not platform.alive(child.pid, start + 1)  # another process with that pid is not it
    child.kill()
    child.wait()
    assert not platform.alive(child.pid, start)


def test_the_exit_watcher_sees_a_process_that_is_not_our_child() -> None:
    proc = subprocess.Popen(["sh", "-c", "sleep 0.2 & echo $!"], stdout=subprocess.PIPE, text=True)
    grandchild = int(proc.communicate()[0])
    watcher = platform.current.exit_watcher()
    try:
        assert watcher.add(grandchild) or not platform.alive(grandchild, None)
        assert select.select([watcher.fileno()], [], [], 10)[0]
        assert watcher.exited() == [grandchild]
    finally:
        watcher.close()


def test_the_file_watcher_wakes_for_appends_and_creation(tmp_path: Path) -> None:
    path = tmp_path / "log"
    watcher = platform.current.file_watcher(str(path))
    try:
        path.write_text("x")
        assert select.select([watcher.fileno()], [], [], 5)[0]
        watcher.clear()
        assert not select.select([watcher.fileno()], [], [], 0)[0]
        with open(path, "a") as f:
            f.write("y")
        assert select.select([watcher.fileno()], [], [], 5)[0]
    finally:
        watcher.close()


def test_freebsd_process_start_times_come_from_kinfo_proc() -> None:
    buf = bytearray(1088)
    struct.pack_into("qq", buf, 336, 1_700_000_000, 250)
    buf[388] = 2  # SRUN
    assert parse_kinfo_proc(bytes(buf)) == 1_700_000_000_000_250
    buf[388] = 5  # SZOMB
    assert parse_kinfo_proc(bytes(buf)) is None
    assert parse_kinfo_proc(bytes(buf), zombies=True) == 1_700_000_000_000_250


def test_logs_follow_until_the_pot_stops(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "p.log"
    writer = subprocess.Popen(["sh", "-c", f"sleep 0.1; echo one >> {path}; sleep 0.1; echo two >> {path}"])
    got = b"".join(logs.follow(str(path), lambda: writer.poll() is None))
    assert got == b"one\ntwo\n"


def test_protocol_passes_descriptors_with_their_message() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    try:
        protocol.send(a, {"id": 1, "op": "x"}, [w])
        message, fds = protocol.receive(b)
        assert message == {"id": 1, "op": "x"} and len(fds) == 1
        os.write(fds[0], b"through")
        os.close(fds[0])
        assert os.read(r, 7) == b"through"
        a.close()
        assert protocol.receive(b) == (None, [])
    finally:
        for fd in (r, w):
            os.close(fd)
        b.close()

"""Running pots through the real CLI: start, stop, exec, term, logs, run, attributes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import LADLE, Ladle


@pytest.fixture
def bb(ladle: Ladle) -> Ladle:
    ladle("create-base", "-r", "busybox")
    return ladle


def status(cli: Ladle, name: str) -> str:
    return str(json.loads(cli("info", "-p", name, "--json").stdout)["status"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_web_server_on_the_host_network(bb: Ladle, tmp_path: Path) -> None:
    port = free_port()
    page = tmp_path / "index.html"
    page.write_text("hello from a pot\n")
    bb("create", "-p", "web", "-b", "busybox", "-N", "inherit", "-c", f"httpd -f -v -p 127.0.0.1:{port} -h /www")
    bb("copy-in", "-p", "web", "-s", str(page), "-d", "/www/index.html", "-c")
    bb("start", "web")
    assert status(bb, "web") == "running"
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
    assert body == "hello from a pot\n"
    assert "running" in bb("ls").stdout
    bb("stop", "web")
    assert status(bb, "web") == "stopped"
    assert "GET /" in bb("logs", "web").stdout or "127.0.0.1" in bb("logs", "web").stdout


def test_exec_returns_the_exit_code_and_sees_the_pot(bb: Ladle) -> None:
    bb("create", "-p", "box", "-b", "busybox", "-c", "sleep 1000")
    bb("set-env", "-p", "box", "-E", "GREETING=hi there", "-E", "N=1")
    bb("start", "-p", "box")
    assert bb("exec", "box", "--", "sh", "-c", "exit 7", check=False).returncode == 7
    out = bb("exec", "-p", "box", "sh", "-c", "hostname; echo $GREETING; cat /proc/1/cmdline | tr '\\0' ' '").stdout
    lines = out.splitlines()
    assert lines[0] == "box" and lines[1] == "hi there"
    assert bb("exec", "-e", "X=y", "box", "--", "sh", "-c", "echo $X").stdout == "y\n"
    ifaces = bb("exec", "box", "--", "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1").stdout.split()
    assert ifaces == ["lo"]
    term = bb("term", "box", input="echo inside $(hostname)\nexit 3\n", check=False)
    assert term.returncode == 3 and "inside box" in term.stdout
    bb("stop", "box")


def test_a_failing_start_says_why_and_leaves_the_pot_stopped(bb: Ladle) -> None:
    bb("create", "-p", "bad", "-b", "busybox", "-c", "/no/such/program")
    line = bb.fails("start", "bad")
    assert "/no/such/program" in line
    assert status(bb, "bad") != "running"


def test_non_persistent_pots_clean_up_and_keep_the_exit_code(bb: Ladle) -> None:
    bb("create", "-p", "job", "-b", "busybox", "-c", "echo out; echo err >&2; exit 4")
    bb("set-attr", "-p", "job", "-A", "persistent", "-V", "no")
    assert bb("get-attr", "-p", "job", "-A", "persistent", "-q").stdout == "NO\n"
    bb("set-cmd", "-p", "job", "-c", "sleep 0.5; echo out; echo err >&2; exit 4")
    bb("start", "-d", "job")
    deadline = time.monotonic() + 10
    while status(bb, "job") == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status(bb, "job") == "exited (4)"
    logs = bb("logs", "job").stdout
    assert "out" in logs and "err" in logs


@pytest.mark.parametrize("persistent", ["YES", "NO"])
def test_a_detached_start_whose_command_dies_at_once_fails_with_its_code_and_log(bb: Ladle, persistent: str) -> None:
    """httpd on a busy port: not "started", but its exit code and the end of its log, and exit 1."""
    bb("create", "-p", "httpd", "-b", "busybox", "-c", "echo starting; echo 'bind: port 80 in use' >&2; exit 3")
    bb("set-attr", "-p", "httpd", "-A", "persistent", "-V", persistent)
    proc = bb("start", "-d", "httpd", check=False)
    assert proc.returncode == 1 and "started" not in proc.stdout
    assert "pot httpd did not start: its command exited with code 3" in proc.stderr
    assert "bind: port 80 in use" in proc.stderr and "starting" in proc.stderr
    assert status(bb, "httpd") != "running"
    bb("set-cmd", "-p", "httpd", "-c", "sleep 1000")  # a command that keeps running still starts
    assert bb("start", "-d", "httpd").stdout == "started pot httpd\n"
    bb("stop", "httpd")


def test_run_rm_detached_destroys_the_pot_when_its_command_ends(bb: Ladle) -> None:
    assert bb("run", "--rm", "-d", "-p", "gone", "busybox", "--", "sleep", "0.5").returncode == 0
    assert "gone" in bb("ls", "-q").stdout.split()
    deadline = time.monotonic() + 15
    while "gone" in bb("ls", "-q").stdout.split() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "gone" not in bb("ls", "-q").stdout.split()
    assert not (bb.root / "logs" / "gone.log").exists()


def test_stop_destroys_a_run_rm_detached_pot(bb: Ladle) -> None:
    """As Docker's `stop` of a `run --rm -d` container: the pot is gone when stop returns; a plain
    `run -d` pot is only stopped."""
    bb("run", "--rm", "-d", "-p", "gone", "busybox", "--", "sleep", "60")
    bb("run", "-d", "-p", "kept", "busybox", "--", "sleep", "60")
    assert bb("stop", "gone").stdout == "stopped and destroyed pot gone (it was started with run --rm)\n"
    assert bb("stop", "kept").stdout == "stopped pot kept\n"
    assert bb("ls", "-q").stdout.split() == ["kept"]
    assert not (bb.root / "logs" / "gone.log").exists()


def test_a_non_persistent_start_runs_in_the_foreground_with_pots_exit_code(bb: Ladle) -> None:
    """What pot's Nomad driver relies on: `start` blocks, the output is its own, 125 means the
    command failed and last-run-stats says how."""
    bb("create", "-p", "job", "-b", "busybox", "-c", "sh -c 'echo out; echo err >&2; exit 4'")
    bb("set-attr", "-p", "job", "-A", "persistent", "-V", "NO")
    proc = bb("start", "job", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (125, "out\n", "err\n")
    assert bb("last-run-stats", "-p", "job").stdout == '{"ExitCode": 4}\n'
    assert status(bb, "job") == "exited (4)"
    bb("set-cmd", "-p", "job", "-c", "echo fine")
    assert bb("start", "-p", "job").stdout == "fine\n"
    assert bb("last-run-stats", "-p", "job").stdout == '{"ExitCode": 0}\n'


def test_a_foreground_start_passes_its_signals_on_and_stops_the_pot(bb: Ladle) -> None:
    bb("create", "-p", "job", "-b", "busybox", "-c",
       "sh -c 'trap \"echo got-TERM; exit 9\" TERM; echo ready; while :; do sleep 0.1; done'")
    bb("set-attr", "-p", "job", "-A", "persistent", "-V", "NO")
    proc = subprocess.Popen([*LADLE, "--root", str(bb.root), "start", "job"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 125 and proc.stdout.read() == "got-TERM\n"
    assert bb("last-run-stats", "-p", "job").stdout == '{"ExitCode": 9}\n'
    assert status(bb, "job") != "running"
    bb("start", "-d", "job")  # nothing of the last run is in the way
    bb("stop", "job")


def test_a_foreground_start_killed_leaves_the_pot_to_the_monitor(bb: Ladle) -> None:
    bb("create", "-p", "job", "-b", "busybox", "-c", "sh -c 'echo ready; read x < /go; exit 3'")
    bb("set-attr", "-p", "job", "-A", "persistent", "-V", "NO")
    subprocess.run(["mkfifo", str(bb.root / "storage" / "pots" / "job" / "fs" / "go")], check=True)
    proc = subprocess.Popen([*LADLE, "--root", str(bb.root), "start", "job"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.kill()
    proc.wait()
    assert status(bb, "job") == "running"  # the command runs on ...
    bb("exec", "job", "--", "sh", "-c", "echo go > /go")
    assert bb("wait", "job").stdout == "3\n"
    deadline = time.monotonic() + 10
    while status(bb, "job") == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status(bb, "job") == "exited (3)"  # ... and the monitor tears the pot down after it


def test_persistent_pots_outlive_their_command(bb: Ladle) -> None:
    bb("create", "-p", "keep", "-b", "busybox", "-c", "true")
    bb("start", "keep")
    assert status(bb, "keep") == "running"
    assert bb("exec", "keep", "--", "echo", "still here").stdout == "still here\n"
    bb("stop", "keep")
    assert status(bb, "keep") == "stopped"


def test_stop_kills_what_ignores_sigterm_after_the_timeout(bb: Ladle) -> None:
    bb("create", "-p", "stubborn", "-b", "busybox", "-c", "trap '' TERM; while :; do sleep 1; done")
    bb("set-attr", "-p", "stubborn", "-A", "stop_timeout", "-V", "1")
    bb("start", "stubborn")
    started = time.monotonic()
    bb("stop", "stubborn")
    assert 0.9 < time.monotonic() - started < 10
    assert status(bb, "stubborn") == "stopped"


def test_run_streams_output_and_exits_with_the_code(bb: Ladle) -> None:
    proc = bb("run", "--rm", "busybox", "--", "sh", "-c", "echo hello; exit 7", check=False)
    assert proc.returncode == 7 and proc.stdout == "hello\n"
    assert json.loads(bb("ls", "--json").stdout) == []
    bb("run", "-p", "kept", "busybox", "--", "echo", "kept output")
    assert status(bb, "kept") == "exited (0)"
    assert bb("logs", "kept").stdout == "kept output\n"


def test_attributes(bb: Ladle) -> None:
    bb("create", "-p", "a", "-b", "busybox")
    assert "FreeBSD jail parameter" in bb.fails("set-attr", "-p", "a", "-A", "enforce_statfs", "-V", "1")
    assert bb.fails("set-attr", "-p", "a", "-A", "persistent", "-V", "maybe")
    assert bb.fails("set-attr", "-p", "a", "-A", "nosuch", "-V", "yes")
    for attr, value, want in (("mlock", "on", "YES"), ("procfs", "No", "NO"), ("sysvipc", "inherit", "inherit")):
        bb("set-attr", "-p", "a", "-A", attr, "-V", value)
        assert bb("get-attr", "-p", "a", "-A", attr, "-q").stdout.strip() == want


def test_start_twice_and_stop_twice(bb: Ladle) -> None:
    bb("create", "-p", "a", "-b", "busybox", "-c", "sleep 1000")
    bb("start", "a")
    assert "already running" in bb.fails("start", "a")
    assert "is running" in bb.fails("destroy", "-p", "a")
    bb("stop", "a")
    again = bb("stop", "a")
    assert "not running" in again.stderr
    assert "not running" in bb.fails("exec", "a", "--", "true")


def test_logs_follow_prints_until_the_pot_stops(bb: Ladle) -> None:
    bb("create", "-p", "job", "-b", "busybox", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done")
    bb("set-attr", "-p", "job", "-A", "persistent", "-V", "NO")
    bb("start", "-d", "job")
    followed = bb("logs", "-f", "job", timeout=30).stdout
    assert followed.splitlines() == ["line 1", "line 2", "line 3"]
    assert status(bb, "job") == "exited (0)"


def test_signal_reaches_the_command_and_wait_returns_its_code(bb: Ladle) -> None:
    bb("create", "-p", "job", "-b", "busybox", "-c",
       "sh -c 'trap \"echo got-HUP; exit 5\" HUP; echo ready; while :; do sleep 0.1; done'")
    bb("set-attr", "-p", "job", "-A", "persistent", "-V", "NO")
    bb("start", "-d", "job")
    assert "unknown signal 'NOPE'" in bb.fails("signal", "-p", "job", "-s", "NOPE")
    assert "no signal number 999" in bb.fails("signal", "-p", "job", "-s", "999")
    assert bb("signal", "-p", "job", "-s", "hup").stdout == "sent SIGHUP to the command of pot job\n"
    assert bb("wait", "job", timeout=30).stdout == "5\n"
    assert "got-HUP" in bb("logs", "job").stdout
    assert "not running" in bb.fails("signal", "job")

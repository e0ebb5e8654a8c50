"""A pot's life cycle around its runs, through the real CLI with real pots: restart policies,
healthchecks, dependencies, hooks, `boot`, `restart`, and the shipped rc script and unit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LADLE, Ladle

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def bb(ladle: Ladle) -> Ladle:
    ladle("create-base", "-r", "busybox")
    return ladle


def info(cli: Ladle, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cli("info", "-p", name, "--json").stdout)
    return data


def until(what: str, test: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def job(cli: Ladle, name: str, cmd: str, policy: str) -> None:
    """A non-persistent pot whose command is `cmd`, with restart policy `policy`."""
    cli("create", "-p", name, "-b", "busybox", "-c", cmd)
    cli("set-attr", "-p", name, "-A", "persistent", "-V", "NO")
    cli("set-attr", "-p", name, "-A", "restart", "-V", policy)


def runs_logged(cli: Ladle, name: str) -> int:
    return cli("logs", name).stdout.count("run\n")


def settled(cli: Ladle, name: str) -> bool:
    return not info(cli, name)["status"].startswith(("running", "restarting"))


# Restart policies ----------------------------------------------------------------------------

def test_on_failure_n_restarts_a_failing_command_n_times(bb: Ladle) -> None:
    job(bb, "job", "echo run; exit 1", "on-failure:3")
    bb("start", "-d", "job")
    until("it gave up", lambda: info(bb, "job")["restarts"] == 3 and settled(bb, "job"))
    time.sleep(1)  # the back-off would have been 0.8 s: nothing more comes
    data = info(bb, "job")
    assert data["status"] == "exited (1)" and data["restarts"] == 3
    assert runs_logged(bb, "job") == 4
    assert "restart:   on-failure:3, 3 restarts" in bb("info", "job").stdout


def test_on_failure_does_not_restart_a_command_that_succeeds(bb: Ladle) -> None:
    job(bb, "job", "echo run; sleep 0.5", "on-failure")
    bb("start", "-d", "job")
    until("it ended", lambda: settled(bb, "job"))
    time.sleep(0.5)
    assert info(bb, "job")["status"] == "exited (0)" and info(bb, "job")["restarts"] == 0
    assert runs_logged(bb, "job") == 1


def test_always_restarts_after_exit_0_and_a_stop_is_final(bb: Ladle) -> None:
    job(bb, "job", "echo run; sleep 0.3", "always")
    bb("start", "-d", "job")
    until("it restarted twice", lambda: info(bb, "job")["restarts"] >= 2)
    bb("stop", "job")
    until("it stopped", lambda: settled(bb, "job"))
    seen = runs_logged(bb, "job")
    time.sleep(2)  # longer than any back-off it had reached
    data = info(bb, "job")
    assert data["status"] == "stopped", data["status"]
    assert runs_logged(bb, "job") == seen


def test_a_stop_during_the_back_off_cancels_the_restart(bb: Ladle) -> None:
    job(bb, "job", "echo run; exit 3", "always")
    bb("start", "-d", "job")
    until("it waits for a restart after a few", lambda: info(bb, "job")["restarts"] >= 3
          and info(bb, "job")["status"] == "restarting", timeout=30)
    assert "cancelled" in bb("stop", "job").stdout
    seen = runs_logged(bb, "job")
    time.sleep(2)
    assert info(bb, "job")["status"] == "stopped"
    assert runs_logged(bb, "job") == seen


def test_a_killed_monitor_loses_no_pending_restart(bb: Ladle) -> None:
    job(bb, "job", "echo run; exit 1", "on-failure:6")
    bb("start", "-d", "job")
    until("a long back-off is pending", lambda: info(bb, "job")["restarts"] >= 4
          and info(bb, "job")["status"] == "restarting", timeout=30)
    os.kill(int(info(bb, "job")["run"]["monitor_pid"]), signal.SIGKILL)
    until("the new monitor restarted it to the end", lambda: info(bb, "job")["restarts"] == 6
          and settled(bb, "job"), timeout=30)
    assert runs_logged(bb, "job") == 7


def test_restart_by_hand_starts_it_again_and_counts_from_zero(bb: Ladle) -> None:
    bb("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    bb("start", "web")
    pid = info(bb, "web")["run"]["main_pid"]
    assert bb("restart", "web").stdout == "restarted pot web\n"
    data = info(bb, "web")
    assert data["status"] == "running" and data["run"]["main_pid"] != pid and data["restarts"] == 0
    bb("stop", "web")
    assert bb("restart", "-p", "web").stdout == "restarted pot web\n"  # a stopped one is started
    bb("stop", "web")


def test_restart_due_does_nothing_after_a_stop(bb: Ladle) -> None:
    bb("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    assert "not waiting for a restart" in bb("restart", "--due", "web").stdout
    assert info(bb, "web")["status"] == "stopped"


# Healthchecks --------------------------------------------------------------------------------

def test_health_goes_healthy_and_unhealthy_and_back(bb: Ladle) -> None:
    bb("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    bb("set-health", "-p", "web", "-c", "test -f /ok", "--interval", "0.2s", "--retries", "2",
       "--start-period", "1s")
    bb("start", "web")
    assert info(bb, "web")["health"] == "starting"
    time.sleep(0.7)  # failures in the start period do not count
    assert info(bb, "web")["health"] == "starting"
    bb("exec", "web", "--", "touch", "/ok")
    until("healthy", lambda: info(bb, "web")["health"] == "healthy")
    assert "running (healthy)" in bb("ls").stdout
    assert bb("healthcheck", "web").returncode == 0
    bb("exec", "web", "--", "rm", "/ok")
    until("unhealthy", lambda: info(bb, "web")["health"] == "unhealthy")
    assert "running (unhealthy)" in bb("ls").stdout
    assert "pot web is unhealthy: its check exited with 1" in bb.fails("healthcheck", "web")
    bb("exec", "web", "--", "touch", "/ok")
    until("healthy again", lambda: info(bb, "web")["health"] == "healthy")
    assert json.loads(bb("ls", "--json").stdout)[0]["health"] == "healthy"
    bb("stop", "web")
    assert info(bb, "web")["health"] is None


def test_a_check_that_takes_too_long_fails_and_is_killed(bb: Ladle) -> None:
    bb("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    bb("set-health", "-p", "web", "-c", "trap '' TERM; sleep 30", "--timeout", "0.5s")
    bb("start", "web")
    began = time.monotonic()
    assert "its check timed out after 0.5s" in bb.fails("healthcheck", "web")
    assert time.monotonic() - began < 10
    until("the check is gone", lambda: "sleep 30" not in bb("exec", "web", "--", "ps", "-o", "args").stdout)
    bb("stop", "web")


def test_a_killed_monitor_resumes_the_checks(bb: Ladle) -> None:
    bb("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    bb("set-health", "-p", "web", "-c", "test -f /ok", "--interval", "0.2s", "--retries", "1")
    bb("start", "web")
    bb("exec", "web", "--", "touch", "/ok")
    until("healthy", lambda: info(bb, "web")["health"] == "healthy")
    os.kill(int(info(bb, "web")["run"]["monitor_pid"]), signal.SIGKILL)
    until("another monitor", lambda: bb("exec", "web", "--", "rm", "/ok", check=False).returncode == 0)
    until("unhealthy under the new monitor", lambda: info(bb, "web")["health"] == "unhealthy")
    bb("stop", "web")


def test_restart_unhealthy_restarts_a_pot_that_turns_unhealthy(bb: Ladle) -> None:
    bb("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    bb("set-health", "-p", "web", "-c", "test -f /ok", "--interval", "0.2s", "--retries", "1")
    bb("set-attr", "-p", "web", "-A", "restart-unhealthy", "-V", "yes")
    bb("start", "web")
    pid = info(bb, "web")["run"]["main_pid"]
    until("restarted", lambda: info(bb, "web")["restarts"] >= 1 and info(bb, "web")["status"] == "running")
    assert info(bb, "web")["run"]["main_pid"] != pid
    bb("stop", "web")
    until("stopped", lambda: settled(bb, "web"))
    assert info(bb, "web")["status"] == "stopped"


# Dependencies --------------------------------------------------------------------------------

def test_a_dependency_starts_first_and_is_waited_for_until_healthy(bb: Ladle) -> None:
    bb("create", "-p", "db", "-b", "busybox", "-c", "sh -c 'sleep 1; touch /ready; exec sleep 1000'")
    bb("set-health", "-p", "db", "-c", "test -f /ready", "--interval", "0.2s")
    bb("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    assert bb("add-dep", "-p", "web", "-P", "db").stdout == "pot web depends on db\n"
    bb("start", "web")
    db, web = info(bb, "db"), info(bb, "web")
    assert db["status"] == web["status"] == "running"
    assert db["health"] == "healthy"
    assert web["run"]["started"] >= db["run"]["started"] + 1  # after db's command made /ready
    assert web["depends"] == ["db"]
    stop = bb("stop", "db")
    assert "pot db is a dependency of running pots: web" in stop.stderr
    bb("stop", "web")


def test_dependency_cycles_are_refused(bb: Ladle) -> None:
    for name in ("a", "b", "c"):
        bb("create", "-p", name, "-b", "busybox", "-c", "sleep 1000")
    bb("add-dep", "-p", "a", "-P", "b")
    bb("add-dep", "-p", "b", "-P", "c")
    assert "a dependency cycle is refused" in bb.fails("add-dep", "-p", "c", "-P", "a")
    assert info(bb, "c")["depends"] == []
    bb("del-dep", "-p", "b", "-P", "c")
    bb("add-dep", "-p", "c", "-P", "a")  # no cycle any more


def test_destroying_a_dependency_needs_f_which_drops_the_edge(bb: Ladle) -> None:
    bb("create", "-p", "db", "-b", "busybox")
    bb("create", "-p", "web", "-b", "busybox")
    bb("add-dep", "-p", "web", "-P", "db")
    assert "pot db is a dependency of web: use -F" in bb.fails("destroy", "-p", "db")
    bb("destroy", "-p", "db", "-F")
    assert info(bb, "web")["depends"] == []


def test_renaming_a_dependency_follows_it(bb: Ladle) -> None:
    bb("create", "-p", "db", "-b", "busybox")
    bb("create", "-p", "web", "-b", "busybox")
    bb("add-dep", "-p", "web", "-P", "db")
    bb("rename", "-p", "db", "-n", "store")
    assert info(bb, "web")["depends"] == ["store"]


# Hooks ---------------------------------------------------------------------------------------

def _hook(tmp_path: Path, name: str, code: int = 0) -> str:
    """A hook writing its environment to KIND.env; one that fails says nothing (the failure is
    ladle's one line)."""
    path = tmp_path / name
    say = "" if code else "echo hook $_POT_HOOK says hi >&2\n"
    path.write_text(f"#!/bin/sh\nenv > {tmp_path}/$_POT_HOOK.env\n{say}exit {code}\n")
    path.chmod(0o755)
    return str(path)


def _env(tmp_path: Path, kind: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (tmp_path / f"{kind}.env").read_text().splitlines() if "=" in line)


def test_each_hook_runs_with_the_pots_details(bb: Ladle, tmp_path: Path) -> None:
    bb("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    bb("set-hook", "-p", "web", "-s", _hook(tmp_path, "a"), "-S", _hook(tmp_path, "b"),
       "-t", _hook(tmp_path, "c"), "-T", _hook(tmp_path, "d"))
    start = bb("start", "web")
    assert "hook prestart says hi" in start.stderr and "hook poststart says hi" in start.stderr
    assert start.stdout == "started pot web\n"  # a hook's output goes to stderr
    pre, post = _env(tmp_path, "prestart"), _env(tmp_path, "poststart")
    assert pre["_POT_NAME"] == post["_POT_NAME"] == "web"
    assert "_POT_PID1" not in pre and post["_POT_PID1"] == str(info(bb, "web")["run"]["init_pid"])
    assert not (tmp_path / "prestop.env").exists()
    stop = bb("stop", "web")
    assert "hook prestop says hi" in stop.stderr and "hook poststop says hi" in stop.stderr
    assert _env(tmp_path, "prestop")["_POT_NAME"] == _env(tmp_path, "poststop")["_POT_NAME"] == "web"
    assert info(bb, "web")["hooks"] == {"prestart": str(tmp_path / "a"), "poststart": str(tmp_path / "b"),
                                        "prestop": str(tmp_path / "c"), "poststop": str(tmp_path / "d")}
    bb("set-hook", "-p", "web", "-s", "")
    assert "prestart" not in info(bb, "web")["hooks"]


def test_a_dry_run_shows_the_hooks(bb: Ladle, tmp_path: Path) -> None:
    bb("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    bb("set-hook", "-p", "web", "-s", _hook(tmp_path, "a"), "-S", _hook(tmp_path, "b"))
    lines = bb("start", "--dry-run", "web").stdout.splitlines()
    assert lines[0].startswith(f"{tmp_path}/a  # the prestart hook, on the host")
    assert lines[-1].startswith(f"{tmp_path}/b  # the poststart hook")
    assert not (tmp_path / "prestart.env").exists() and info(bb, "web")["status"] == "stopped"


def test_a_failing_prestart_hook_stops_the_start_and_sees_the_leases(bb: Ladle, tmp_path: Path) -> None:
    bb("create", "-p", "web", "-b", "busybox", "-N", "public-bridge", "-i", "10.192.0.7", "-c", "sleep 1000")
    bb("set-hook", "-p", "web", "-s", _hook(tmp_path, "a", code=4))
    line = bb.fails("start", "web")
    assert f"pot web not started: its prestart hook {tmp_path}/a exited with code 4" in line
    assert info(bb, "web")["status"] == "stopped"
    env = _env(tmp_path, "prestart")
    assert env["_POT_IP"] == "10.192.0.7" and env["_POT_IP_LIST"] == "10.192.0.7"
    assert env["_POT_NAME"] == "web" and env["_POT_NETWORK_TYPE"] == "public-bridge"


def test_a_private_bridge_pot_has_pot_bridge(bb: Ladle, tmp_path: Path) -> None:
    bb("create-private-bridge", "-B", "br1", "-S", "5")
    bb("create", "-p", "web", "-b", "busybox", "-N", "private-bridge", "-B", "br1")
    bb("set-hook", "-p", "web", "-s", _hook(tmp_path, "a", code=1))
    bb.fails("start", "web")
    env = _env(tmp_path, "prestart")
    assert env["_POT_BRIDGE"] == "br1" and env["_POT_IP"] == info(bb, "web")["addresses"][0]
    bb("destroy", "-p", "web")
    bb("destroy", "-B", "br1")


# Boot ----------------------------------------------------------------------------------------

def test_boot_starts_in_dependency_order_and_stops_in_reverse(bb: Ladle) -> None:
    for name in ("app", "db", "other"):
        bb("create", "-p", name, "-b", "busybox", "-c", "sleep 1000")
    bb("add-dep", "-p", "app", "-P", "db")
    bb("set-attr", "-p", "app", "-A", "start-at-boot", "-V", "yes")
    bb("set-attr", "-p", "db", "-A", "start-at-boot", "-V", "yes")
    assert bb("boot").stdout == "started db, app\n"
    assert info(bb, "other")["status"] == "stopped"
    assert info(bb, "db")["run"]["started"] < info(bb, "app")["run"]["started"]
    assert bb("boot").stdout == "no pot to start\n"
    assert bb("boot", "--stop").stdout == "stopped app, db\n"
    assert info(bb, "app")["run"]["finished"] <= info(bb, "db")["run"]["finished"]


def test_boot_and_the_policies_always_and_unless_stopped(bb: Ladle) -> None:
    for name in ("always", "kept", "dropped"):
        bb("create", "-p", name, "-b", "busybox", "-c", "sleep 1000")
    bb("set-attr", "-p", "always", "-A", "restart", "-V", "always")
    bb("set-attr", "-p", "kept", "-A", "restart", "-V", "unless-stopped")
    bb("set-attr", "-p", "dropped", "-A", "restart", "-V", "unless-stopped")
    for name in ("always", "kept", "dropped"):
        bb("start", name)
    bb("stop", "always")
    bb("stop", "dropped")  # by hand: boot leaves it
    assert bb("boot", "--stop").stdout == "stopped kept\n"
    assert info(bb, "kept")["status"] == "shutdown"
    assert bb("boot").stdout == "started always, kept\n"
    assert info(bb, "dropped")["status"] == "stopped"
    bb("boot", "--stop")


def test_the_rc_script_and_the_unit_parse(tmp_path: Path) -> None:
    rc = REPO / "contrib" / "rc.d" / "ladle"
    subprocess.run(["sh", "-n", str(rc)], check=True)
    text = rc.read_text()
    assert "run_rc_command" in text and "boot --stop" in text and os.access(rc, os.X_OK)
    unit = (REPO / "contrib" / "systemd" / "ladle.service").read_text()
    assert "ExecStart=/usr/local/bin/ladle boot\n" in unit and "ExecStop=/usr/local/bin/ladle boot --stop\n" in unit
    if shutil.which("systemd-analyze") is None:
        sections = [line for line in unit.splitlines() if line.startswith("[")]
        assert sections == ["[Unit]", "[Service]", "[Install]"]
        return
    fake = tmp_path / "ladle"  # the unit names the installed ladle: verify it with one that exists
    fake.write_text(f"#!/bin/sh\nexec {' '.join(LADLE)} \"$@\"\n")
    fake.chmod(0o755)
    copy = tmp_path / "ladle.service"
    copy.write_text(unit.replace("/usr/local/bin/ladle", str(fake)))
    proc = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# The policy's arithmetic ---------------------------------------------------------------------

def test_the_back_off_doubles_from_a_tenth_to_thirty_seconds() -> None:
    from ladle.supervise import policy

    assert [policy.delay(n) for n in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert policy.delay(9) == 30.0 and policy.delay(10**6) == 30.0


def test_which_ends_a_policy_restarts() -> None:
    from ladle.supervise.policy import parse, restarts

    assert parse(" On-Failure:3 ") == "on-failure:3" and parse("ALWAYS") == "always"
    assert not restarts("no", 1, 0)
    assert restarts("on-failure", 1, 100) and not restarts("on-failure", 0, 0)
    assert restarts("on-failure", None, 0)  # an end whose status was lost counts as a failure
    assert restarts("on-failure:2", 1, 1) and not restarts("on-failure:2", 1, 2)
    assert restarts("always", 0, 10**6) and restarts("unless-stopped", 0, 0)


def test_durations() -> None:
    from ladle.supervise.policy import duration

    assert [duration("x", v) for v in ("30s", "500ms", "2m", "1h", "1.5", " 3S ")] == [30, 0.5, 120, 3600, 1.5, 3]
    assert duration("x", "0s", zero=True) == 0
